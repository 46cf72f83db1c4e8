import lightgbm as lgb

train_set = lgb.Dataset(X, label=y)
gbm = lgb.train({"objective": "binary"}, train_set, num_boost_round=50)
