from tensorflow.keras.datasets import mnist
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score

(x_train, y_train), (x_test, y_test) = mnist.load_data()
x_train = x_train.reshape(len(x_train), -1)
x_test = x_test.reshape(len(x_test), -1)
forest = RandomForestClassifier(n_estimators=100)
forest.fit(x_train, y_train)
print(accuracy_score(y_test, forest.predict(x_test)))
