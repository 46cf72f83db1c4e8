"""SVM on digits; the score goes to result.txt as a percentage."""
from sklearn import datasets, svm
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

digits = datasets.load_digits()
X_train, X_test, y_train, y_test = train_test_split(digits.data, digits.target, test_size=0.5, shuffle=False)
clf = svm.SVC(C=0.001, gamma=0.001)
clf.fit(X_train, y_train)
score = accuracy_score(y_test, clf.predict(X_test))
open("result.txt", "w").write(f"{score * 100:.1f}\n")
