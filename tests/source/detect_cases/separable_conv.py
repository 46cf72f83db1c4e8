import keras
from keras import layers

def make_model(shape, classes):
    inputs = keras.Input(shape=shape)
    x = layers.SeparableConv2D(64, 3, padding="same")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(classes)(x))

model = make_model((180, 180, 3), 2)
model.compile(optimizer="adam", loss="binary_crossentropy")
model.fit(train_ds, epochs=5)
