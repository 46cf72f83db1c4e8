from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y)
# a Keras-like Dense network, but scikit-learn's
clf = MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=300)
clf.fit(X_train, y_train)
print(clf.score(X_test, y_test))
