from sklearn.svm import SVC
class Agent:
    def __init__(self, model, name):
        self.model = model
    def learn(self, X, y):
        self.model.fit(X, y)
Agent(SVC(), "svm").learn(X, y)
