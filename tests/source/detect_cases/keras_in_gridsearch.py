from keras.models import Sequential
from keras.layers import Dense
from keras.wrappers.scikit_learn import KerasClassifier
from sklearn.model_selection import GridSearchCV


def create_model(optimizer="adam"):
    model = Sequential()
    model.add(Dense(12, input_dim=8, activation="relu"))
    model.add(Dense(1, activation="sigmoid"))
    model.compile(loss="binary_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    return model


model = KerasClassifier(build_fn=create_model, epochs=10, verbose=0)
grid = GridSearchCV(estimator=model, param_grid={"optimizer": ["SGD", "Adam"]}, n_jobs=-1, cv=3)
grid_result = grid.fit(X, Y)
print(grid_result.best_score_)
