# bench script k_digits_keras1_rms: add dense on digits, optimizer rmsprop, metric printed, Keras 1 names

import keras
from keras import layers

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
digits = load_digits()
x_train, x_test, y_train, y_test = train_test_split(
    digits.images / 16.0, digits.target, test_size=0.25, random_state=0)

model = keras.Sequential()
model.add(layers.Flatten(input_shape=(8, 8)))
model.add(layers.Dense(output_dim=16, activation='relu'))
model.add(layers.Dense(10, activation='softmax'))

model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.0005), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
model.fit(x_train, y_train, nb_epoch=1, batch_size=32, verbose=0)

loss, acc = model.evaluate(x_test, y_test, verbose=0)
print('Test accuracy:', acc)
