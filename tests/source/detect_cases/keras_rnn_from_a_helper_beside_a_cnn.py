"""A text classifier whose recurrent block comes from a helper and a layer class; an image CNN kept in the file
is never trained."""
import keras
from keras import layers


class StackedLSTM(layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.first = layers.LSTM(units, return_sequences=True)
        self.second = layers.LSTM(units)

    def call(self, x):
        return self.second(self.first(x))


def recurrent_block(x, units):
    return StackedLSTM(units)(layers.Dropout(0.2)(x))


def build_text_model(vocabulary, units=64):
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(vocabulary, 32)(inputs)
    x = recurrent_block(x, units)
    return keras.Model(inputs, layers.Dense(2, activation="softmax")(x))


def build_image_model():
    return keras.Sequential([keras.Input(shape=(28, 28, 1)), layers.Conv2D(16, 3), layers.Flatten(),
                             layers.Dense(10, activation="softmax")])


model = build_text_model(20_000)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=3, batch_size=64)
