from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

X, _ = make_blobs(n_samples=300, centers=4)
kmeans = KMeans(n_clusters=4, n_init=10)
labels = kmeans.fit_predict(X)
