from sklearn.svm import SVC
SVC().fit(X, y)
