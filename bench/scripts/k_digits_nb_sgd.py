# bench script k_digits_nb_sgd: add dense on digits, optimizer sgdlr, metric printed, exported notebook

# In[1]:

import keras
from keras import layers

# In[2]:

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
digits = load_digits()
x_train, x_test, y_train, y_test = train_test_split(
    digits.images / 16.0, digits.target, test_size=0.25, random_state=0)

# In[3]:

model = keras.Sequential()
model.add(layers.Flatten(input_shape=(8, 8)))
model.add(layers.Dense(32, activation='relu'))
model.add(layers.Dense(10, activation='softmax'))

# In[4]:

model.compile(optimizer=keras.optimizers.SGD(lr=0.001, momentum=0.9), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
model.fit(x_train, y_train, epochs=2, batch_size=32, verbose=0)

# In[5]:

loss, acc = model.evaluate(x_test, y_test, verbose=0)
print('Test accuracy:', acc)
