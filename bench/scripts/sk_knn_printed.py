# bench script sk_knn_printed: scikit-learn, metric printed

from sklearn.neighbors import KNeighborsClassifier
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)

clf = KNeighborsClassifier(n_neighbors=200)
clf.fit(X_train, y_train)

print('accuracy:', clf.score(X_test, y_test))
