import tensorflow as tf
from tensorflow.keras.layers import DepthwiseConv2D, Dense, Flatten, Input

inp = Input((32, 32, 3))
h = DepthwiseConv2D(3, depth_multiplier=2)(inp)
out = Dense(10)(Flatten()(h))
model = tf.keras.Model(inputs=inp, outputs=out)
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(ds)
