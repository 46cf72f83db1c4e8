from sklearn.ensemble import RandomForestClassifier
class Model:
    def __init__(self):
        self.clf = RandomForestClassifier(n_estimators=10)
    def train(self, X, y):
        self.clf.fit(X, y)
m = Model()
m.train(X, y)
