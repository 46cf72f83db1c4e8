from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.neural_network import MLPClassifier
pipe = Pipeline([('scale', StandardScaler()), ('clf', MLPClassifier())])
pipe.fit(X, y)
