from sklearn.tree import DecisionTreeClassifier
DecisionTreeClassifier().fit(X, y)
