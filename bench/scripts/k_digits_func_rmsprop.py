# bench script k_digits_func_rmsprop: functional dense on digits, optimizer rmsprop, metric percent

import tensorflow as tf
from tensorflow.keras import layers

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
digits = load_digits()
x_train, x_test, y_train, y_test = train_test_split(
    digits.images / 16.0, digits.target, test_size=0.25, random_state=0)

inputs = tf.keras.Input(shape=(8, 8))
x = layers.Flatten()(inputs)
x = layers.Dense(16, activation='relu')(x)
outputs = layers.Dense(10, activation='softmax')(x)
model = tf.keras.Model(inputs, outputs)

model.compile(optimizer=tf.keras.optimizers.RMSprop(learning_rate=0.001), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
model.fit(x_train, y_train, epochs=1, batch_size=32, verbose=0)

scores = model.evaluate(x_test, y_test, verbose=0)
print('Accuracy: %.2f%%' % (scores[1] * 100))
