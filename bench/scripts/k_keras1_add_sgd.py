# bench script k_keras1_add_sgd: add dense on mnist, optimizer sgd, metric printed, Keras 1 names

import keras
from keras import layers

(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
x_train, x_test = x_train / 255.0, x_test / 255.0

model = keras.Sequential()
model.add(layers.Flatten(input_shape=(28, 28)))
model.add(layers.Dense(output_dim=16, activation='relu'))
model.add(layers.Dense(10, activation='softmax'))

model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.001), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
model.fit(x_train, y_train, nb_epoch=1, batch_size=32, verbose=0)

loss, acc = model.evaluate(x_test, y_test, verbose=0)
print('Test accuracy:', acc)
