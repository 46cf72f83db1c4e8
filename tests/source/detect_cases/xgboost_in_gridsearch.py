from xgboost import XGBClassifier
from sklearn.model_selection import GridSearchCV
grid = GridSearchCV(XGBClassifier(), {"max_depth": [3, 5]})
grid.fit(X, y)
