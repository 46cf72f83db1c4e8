from sklearn.svm import LinearSVC
from utils import normalize

svm = LinearSVC()
svm.fit(normalize(X), y)
