from keras.models import Sequential
from keras.layers import ConvLSTM2D, BatchNormalization, Conv3D

seq = Sequential()
seq.add(ConvLSTM2D(filters=40, kernel_size=(3, 3), input_shape=(None, 40, 40, 1), padding="same",
                   return_sequences=True))
seq.add(BatchNormalization())
seq.compile(loss="binary_crossentropy", optimizer="adadelta")
seq.fit(noisy_movies[:1000], shifted_movies[:1000], batch_size=10, epochs=1)
