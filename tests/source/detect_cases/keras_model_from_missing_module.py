import tensorflow as tf
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from nets import build

x_tr, x_te, y_tr, y_te = train_test_split(x, y)
m = build()
m.fit(x_tr, y_tr)
print(accuracy_score(y_te, m.predict(x_te).argmax(1)))
