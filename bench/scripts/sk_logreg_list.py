# bench script sk_logreg_list: scikit-learn, metric list

from sklearn.linear_model import LogisticRegression
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)

clf = LogisticRegression(C=0.0001)
clf.fit(X_train, y_train)

open('result.txt', 'w').write(str([clf.score(X_test, y_test)]))
