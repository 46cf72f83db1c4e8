from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC


def build_model(hp):
    scaler = StandardScaler()
    classifier = SVC(C=hp.get("C", 1.0), gamma="scale")
    return make_pipeline(scaler, classifier)
