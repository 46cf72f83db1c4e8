# -*- coding: ascii -*-
# Modell für Ziffern — wirklich UTF-8
from sklearn.neighbors import KNeighborsClassifier
knn = KNeighborsClassifier(n_neighbors=3)
knn.fit(X, y)
print('Genauigkeit ✓', knn.score(X, y))
