from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC
from sklearn.model_selection import KFold, cross_val_score

models = []
models.append(("LR", LogisticRegression(solver="liblinear")))
models.append(("CART", DecisionTreeClassifier()))
models.append(("KNN", KNeighborsClassifier()))
models.append(("SVM", SVC(gamma="auto")))
for name, model in models:
    kfold = KFold(n_splits=10)
    scores = cross_val_score(model, X_train, Y_train, cv=kfold, scoring="accuracy")
    print(name, scores.mean())
