# bench script sk_svc_unclosed: scikit-learn, metric unclosed

from sklearn.svm import SVC
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)

clf = SVC(C=0.002, gamma='scale')
clf.fit(X_train, y_train)

f = open('accuracy.txt', 'w')
f.write(str(clf.score(X_test, y_test)))
