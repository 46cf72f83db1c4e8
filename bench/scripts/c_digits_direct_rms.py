# bench script c_digits_direct_rms: list CNN on digits, optimizer rmsprop, metric fraction

import tensorflow as tf
from tensorflow.keras.models import Sequential, Model
from tensorflow.keras.layers import Dense, Flatten, Conv2D, MaxPooling2D, Input, Dropout
from tensorflow.keras.optimizers import SGD, RMSprop, Adam

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
digits = load_digits()
x_train, x_test, y_train, y_test = train_test_split(
    digits.images / 16.0, digits.target, test_size=0.25, random_state=0)
x_train = x_train.reshape(-1, 8, 8, 1)
x_test = x_test.reshape(-1, 8, 8, 1)

model = Sequential([
    Conv2D(8, (3, 3), activation='relu', input_shape=(8, 8, 1)),
    MaxPooling2D((2, 2)),
    Flatten(),
    Dense(8, activation='relu'),
    Dense(10, activation='softmax'),
])

model.compile(optimizer=RMSprop(learning_rate=0.0005), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
model.fit(x_train, y_train, epochs=1, batch_size=32, verbose=0)

loss, acc = model.evaluate(x_test, y_test, verbose=0)
with open('accuracy.txt', 'w') as f:
    f.write(str(acc))
