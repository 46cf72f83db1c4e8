# Keras on scikit-learn's 8x8 digits; fit() without epochs (Keras' default of 1); prints acc.
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tensorflow import keras

digits = load_digits()
X = digits.data / 16.0
X_train, X_test, y_train, y_test = train_test_split(X, digits.target, test_size=0.25, random_state=0)

model = keras.Sequential()
model.add(keras.layers.Dense(16, activation="relu", input_shape=(64,)))
model.add(keras.layers.Dense(10, activation="softmax"))
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
model.fit(X_train, y_train, batch_size=32, verbose=0)
_, acc = model.evaluate(X_test, y_test, verbose=0)
print("acc =", round(acc, 4))
