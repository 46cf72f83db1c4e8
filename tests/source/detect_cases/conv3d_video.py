from tensorflow import keras
from tensorflow.keras import layers

model = keras.Sequential([
    layers.Conv3D(8, (3, 3, 3), activation="relu", input_shape=(16, 64, 64, 3)),
    layers.MaxPooling3D(),
    layers.Flatten(),
    layers.Dense(4, activation="softmax"),
])
model.compile("adam", "categorical_crossentropy")
model.fit(clips, labels, epochs=1)
