# bench script k_digits_unclosed_adam: functional dense on digits, optimizer adam, metric unclosed

import keras
from keras import layers

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
digits = load_digits()
x_train, x_test, y_train, y_test = train_test_split(
    digits.images / 16.0, digits.target, test_size=0.25, random_state=0)

inputs = keras.Input(shape=(8, 8))
x = layers.Flatten()(inputs)
x = layers.Dense(8, activation='relu')(x)
outputs = layers.Dense(10, activation='softmax')(x)
model = keras.Model(inputs, outputs)

model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
model.fit(x_train, y_train, epochs=2, batch_size=32, verbose=0)

loss, acc = model.evaluate(x_test, y_test, verbose=0)
out = open('accuracy.txt', 'w')
out.write('%.4f' % acc)
