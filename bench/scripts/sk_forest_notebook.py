# bench script sk_forest_notebook: scikit-learn, metric printed, exported notebook

# In[1]:

from sklearn.ensemble import RandomForestClassifier
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)

# In[2]:

clf = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=1)
clf.fit(X_train, y_train)

# In[3]:

print('accuracy:', clf.score(X_test, y_test))
