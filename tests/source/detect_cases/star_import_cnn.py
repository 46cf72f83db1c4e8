from tensorflow.keras.layers import *
from tensorflow.keras.models import *

net = Sequential()
net.add(Conv2D(8, (3, 3), input_shape=(32, 32, 3)))
net.add(Flatten())
net.add(Dense(1, activation="sigmoid"))
net.compile("sgd", "binary_crossentropy")
net.fit(images, labels)
