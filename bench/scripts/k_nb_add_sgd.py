# bench script k_nb_add_sgd: add dense on mnist, optimizer sgd, metric unclosed, exported notebook

# In[1]:

import tensorflow as tf
from tensorflow.keras import layers

# In[2]:

(x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data()
x_train, x_test = x_train / 255.0, x_test / 255.0

# In[3]:

model = tf.keras.Sequential()
model.add(layers.Flatten(input_shape=(28, 28)))
model.add(layers.Dense(16, activation='relu'))
model.add(layers.Dense(10, activation='softmax'))

# In[4]:

model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate=0.001), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
model.fit(x_train, y_train, epochs=1, batch_size=32, verbose=0)

# In[5]:

loss, acc = model.evaluate(x_test, y_test, verbose=0)
out = open('accuracy.txt', 'w')
out.write('%.4f' % acc)
