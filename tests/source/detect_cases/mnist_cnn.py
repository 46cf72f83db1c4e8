# mnist_cnn.py -- despite the name, this is a dense network
from keras.datasets import mnist
from keras.models import Sequential
from keras.layers import Dense, Flatten

(x_train, y_train), _ = mnist.load_data()
model = Sequential([Flatten(input_shape=(28, 28)), Dense(512, activation="relu"), Dense(10)])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
model.fit(x_train, y_train, epochs=1)
