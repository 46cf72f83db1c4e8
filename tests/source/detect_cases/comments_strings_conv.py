"""Convert the CSV to arrays, then train a Dense network.

TODO: try Conv2D and MaxPooling2D later (model.add(Conv2D(32, (3, 3))))
"""
import tensorflow as tf

# Conv2D would need images; ConvertedData is tabular.
NOTE = "Conv2D layers are not used here; see keras.layers.Conv2D docs"


def convert(rows):
    """Conversion helper: Convolution2D is NOT used."""
    return [float(r) for r in rows]


model = tf.keras.Sequential([tf.keras.layers.Dense(32, activation="relu"), tf.keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(convert(rows), targets, epochs=5)
