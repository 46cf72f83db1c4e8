from keras.models import Sequential
from keras.layers import Embedding, Dense
from keras.layers.convolutional import Convolution1D, MaxPooling1D

model = Sequential()
model.add(Embedding(5000, 32, input_length=400))
model.add(Convolution1D(nb_filter=32, filter_length=3, border_mode="same", activation="relu"))
model.add(MaxPooling1D(pool_length=2))
model.add(Dense(1, activation="sigmoid"))
model.compile(loss="binary_crossentropy", optimizer="adam")
model.fit(X_train, y_train, nb_epoch=2)
