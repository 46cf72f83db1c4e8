from keras.models import Sequential
from keras.layers.core import Dense, Activation, Flatten
from keras.layers.convolutional import Convolution2D, MaxPooling2D

model = Sequential()
model.add(Convolution2D(32, 3, 3, border_mode="valid", input_shape=(1, 28, 28)))
model.add(Activation("relu"))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Flatten())
model.add(Dense(10))
model.compile(loss="categorical_crossentropy", optimizer="adadelta")
model.fit(X_train, Y_train, batch_size=128, nb_epoch=12, show_accuracy=True)
