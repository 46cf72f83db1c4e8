# bench script sk_logreg_printed: scikit-learn, metric printed

from sklearn.linear_model import LogisticRegression
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)

clf = LogisticRegression(C=0.0002, max_iter=200)
clf.fit(X_train, y_train)

print('accuracy:', clf.score(X_test, y_test))
