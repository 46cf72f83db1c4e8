from __future__ import division, print_function
from sklearn import datasets
from sklearn.tree import DecisionTreeClassifier
import sys
sys.path.insert(0, '../supervised_learning/')
from data_manipulation import train_test_split
from decision_tree import ClassificationTree

def main():
	data = datasets.load_iris()
	X_train, X_test, y_train, y_test = train_test_split(data.data, data.target, test_size=0.4)
	clf = ClassificationTree()
	clf.fit(X_train, y_train)

if __name__ == "__main__":
    main()
