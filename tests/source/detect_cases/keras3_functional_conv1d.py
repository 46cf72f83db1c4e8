import keras
from keras import layers

inputs = keras.Input(shape=(None,), dtype="int64")
x = layers.Embedding(20000, 128)(inputs)
x = layers.Conv1D(128, 7, strides=3, activation="relu")(x)
x = layers.GlobalMaxPooling1D()(x)
predictions = layers.Dense(1, activation="sigmoid")(x)
model = keras.Model(inputs, predictions)
model.compile(loss="binary_crossentropy", optimizer="adam")
model.fit(train_ds, validation_data=val_ds, epochs=3)
