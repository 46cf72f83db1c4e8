from tensorflow.keras.preprocessing.sequence import pad_sequences
from tensorflow.keras.models import Sequential
from tensorflow.keras.layers import Embedding, LSTM, Dense

x = pad_sequences(sequences, maxlen=100)
model = Sequential([Embedding(10000, 64), LSTM(64), Dense(1, activation="sigmoid")])
model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
model.fit(x, y, validation_split=0.2, epochs=3)
