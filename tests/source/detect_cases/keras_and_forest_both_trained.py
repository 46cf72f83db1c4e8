from sklearn.ensemble import RandomForestClassifier
import tensorflow as tf

baseline = RandomForestClassifier().fit(X_train, y_train)
print("baseline", baseline.score(X_test, y_test))
net = tf.keras.Sequential([tf.keras.layers.Conv2D(8, 3), tf.keras.layers.Flatten(), tf.keras.layers.Dense(10)])
net.compile("adam", "sparse_categorical_crossentropy")
net.fit(images, y_train)
