from keras import layers, models


def build_rnn():
    return models.Sequential([layers.Embedding(20_000, 32), layers.LSTM(64), layers.Dense(2)])
