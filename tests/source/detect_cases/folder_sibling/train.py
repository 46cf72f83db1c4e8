import model as architectures

net = architectures.build(10)
net.compile("adam", "sparse_categorical_crossentropy")
net.fit(x, y, epochs=2)
