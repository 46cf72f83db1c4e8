from sklearn.ensemble import RandomForestClassifier

SPACE = {"n_estimators": [50, 100, 200]}


def build_model(hp):
    return RandomForestClassifier(n_estimators=hp.get("n_estimators", 100), random_state=0)
