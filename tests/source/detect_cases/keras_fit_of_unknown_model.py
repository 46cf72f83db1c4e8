import lstm

X_train, y_train, X_test, y_test = lstm.load_data('sp500.csv', 50, True)
model = lstm.build_model([1, 50, 100, 1])
model.fit(X_train, y_train, batch_size=512, nb_epoch=1, validation_split=0.05)
