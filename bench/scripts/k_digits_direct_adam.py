# bench script k_digits_direct_adam: list dense on digits, optimizer adamlr, metric list

import tensorflow as tf
from tensorflow.keras.models import Sequential, Model
from tensorflow.keras.layers import Dense, Flatten, Conv2D, MaxPooling2D, Input, Dropout
from tensorflow.keras.optimizers import SGD, RMSprop, Adam

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
digits = load_digits()
x_train, x_test, y_train, y_test = train_test_split(
    digits.images / 16.0, digits.target, test_size=0.25, random_state=0)

model = Sequential([
    Flatten(input_shape=(8, 8)),
    Dense(8, activation='relu'),
    Dense(10, activation='softmax'),
])

model.compile(optimizer=Adam(learning_rate=0.001), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
model.fit(x_train, y_train, epochs=1, batch_size=32, verbose=0)

scores = model.evaluate(x_test, y_test, verbose=0)
open('result.txt', 'w').write(str([scores[1]]))
