# k-nearest neighbours on scikit-learn's digits; n_neighbors is a literal.
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=42)

knn = KNeighborsClassifier(n_neighbors=150)
knn.fit(X_train, y_train)
print("KNN accuracy:", knn.score(X_test, y_test))
