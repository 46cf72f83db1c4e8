from sklearn.svm import SVC

def train(X, y):
        clf = SVC()
	clf.fit(X, y)
	return clf

train(X, y)
