# A CNN written with `from keras.layers import *`; writes result.txt as a percentage.
from keras.models import Sequential
from keras.layers import *
from keras.datasets import mnist
from keras.utils import to_categorical

EPOCHS = 1
BATCH = 64

(X_train, y_train), (X_test, y_test) = mnist.load_data()
X_train = X_train.reshape(X_train.shape[0], 28, 28, 1).astype('float32') / 255
X_test = X_test.reshape(X_test.shape[0], 28, 28, 1).astype('float32') / 255
y_train = to_categorical(y_train)
y_test = to_categorical(y_test)

model = Sequential()
model.add(Conv2D(4, (3, 3), activation='relu', input_shape=(28, 28, 1)))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Flatten())
model.add(Dense(10, activation='softmax'))
model.compile(loss='categorical_crossentropy', optimizer='adam', metrics=['accuracy'])
model.fit(X_train, y_train, batch_size=BATCH, epochs=EPOCHS, verbose=0)

pred = model.predict(X_test, verbose=0).argmax(axis=1)
correct = (pred == y_test.argmax(axis=1)).sum()
with open('result.txt', 'w') as f:
    f.write('Accuracy: %.2f%%\n' % (100.0 * correct / len(X_test)))
