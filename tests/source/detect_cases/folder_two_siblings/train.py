import sys

from convolutional import build_cnn
from recurrent import build_rnn

model = build_cnn() if "--cnn" in sys.argv else build_rnn()
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
model.fit(x_train, y_train, epochs=3)
