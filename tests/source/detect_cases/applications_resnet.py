import tensorflow as tf

base = tf.keras.applications.ResNet50(include_top=False, weights=None, input_shape=(224, 224, 3))
base.trainable = False
head = tf.keras.layers.Dense(3, activation="softmax")
model = tf.keras.Sequential([base, tf.keras.layers.GlobalAveragePooling2D(), head])
model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
model.fit(train_generator, epochs=5)
