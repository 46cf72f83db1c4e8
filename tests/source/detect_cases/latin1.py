# Entraînement d'un arbre de décision (fichier en Latin-1)
from sklearn.tree import DecisionTreeClassifier
arbre = DecisionTreeClassifier(max_depth=3)  # profondeur élevée
arbre.fit(X, y)
