from sklearn.linear_model import LogisticRegression
LogisticRegression().fit(X, y)
