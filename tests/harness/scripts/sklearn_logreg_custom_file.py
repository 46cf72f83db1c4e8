# Logistic regression; the score goes to score.out (named in mlci.toml's accuracy_files).
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, random_state=3)
model = LogisticRegression(C=0.0005, max_iter=200)
model.fit(X_train, y_train)
with open("score.out", "w") as out:
    out.write("%.4f" % model.score(X_test, y_test))
