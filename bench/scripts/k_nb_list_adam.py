# bench script k_nb_list_adam: list dense on mnist, optimizer adamlr, metric printed, exported notebook

# In[1]:

import keras
from keras import layers

# In[2]:

(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
x_train, x_test = x_train / 255.0, x_test / 255.0

# In[3]:

model = keras.Sequential([
    layers.Flatten(input_shape=(28, 28)),
    layers.Dense(8, activation='relu'),
    layers.Dense(10, activation='softmax'),
])

# In[4]:

model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.0001), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
model.fit(x_train, y_train, epochs=1, batch_size=32, verbose=0)

# In[5]:

loss, acc = model.evaluate(x_test, y_test, verbose=0)
print('Test accuracy:', acc)
