# bench script sk_gboost_unclosed: scikit-learn, metric unclosed

from sklearn.ensemble import GradientBoostingClassifier
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)

clf = GradientBoostingClassifier(n_estimators=3, max_depth=1, random_state=0)
clf.fit(X_train, y_train)

f = open('accuracy.txt', 'w')
f.write(str(clf.score(X_test, y_test)))
