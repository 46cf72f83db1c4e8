# model.add(Conv2D(32, 3))
# import tensorflow as tf
# TODO: write the model
