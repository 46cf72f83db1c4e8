import xgboost as xgb
from sklearn.model_selection import train_test_split
from sklearn.metrics import accuracy_score

X_train, X_test, y_train, y_test = train_test_split(X, y)
booster = xgb.XGBClassifier(n_estimators=200, max_depth=4)
booster.fit(X_train, y_train)
print(accuracy_score(y_test, booster.predict(X_test)))
