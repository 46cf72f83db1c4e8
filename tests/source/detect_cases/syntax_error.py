import tensorflow as tf

model = tf.keras.Sequential()
model.add(tf.keras.layers.Conv2D(16, 3, input_shape=(28, 28, 1)))
model.add(tf.keras.layers.Flatten())
model.add(tf.keras.layers.Dense(10)
for epoch in range(3) print(epoch)
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(x, y)
