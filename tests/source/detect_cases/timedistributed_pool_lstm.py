import keras
from keras import layers

# frames of pre-computed feature maps: pooled per frame, then read in order by an LSTM (no convolution here)
model = keras.Sequential([
    keras.Input(shape=(10, 16, 16, 4)),
    layers.TimeDistributed(layers.MaxPooling2D(pool_size=2)),
    layers.TimeDistributed(layers.Flatten()),
    layers.LSTM(32),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=2)
