# bench script c_nb_list_sgd: list CNN on mnist, optimizer sgdlr, metric printed, exported notebook

# In[1]:

import keras
from keras import layers

# In[2]:

(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
x_train, x_test = x_train / 255.0, x_test / 255.0
x_train = x_train.reshape(-1, 28, 28, 1)
x_test = x_test.reshape(-1, 28, 28, 1)

# In[3]:

model = keras.Sequential([
    layers.Conv2D(8, (3, 3), activation='relu', input_shape=(28, 28, 1)),
    layers.MaxPooling2D((2, 2)),
    layers.Flatten(),
    layers.Dense(16, activation='relu'),
    layers.Dense(10, activation='softmax'),
])

# In[4]:

model.compile(optimizer=keras.optimizers.SGD(lr=0.001, momentum=0.9), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
model.fit(x_train, y_train, epochs=1, batch_size=32, verbose=0)

# In[5]:

loss, acc = model.evaluate(x_test, y_test, verbose=0)
print('Test accuracy:', acc)
