from keras.models import Sequential
from keras.layers import Convolution2D, Flatten, Dense
model = Sequential()
model.add(Convolution2D(32, 3, 3, input_shape=(1, 28, 28)))
model.add(Flatten())
model.add(Dense(10))
model.compile('adam', 'categorical_crossentropy')
print "epoch %d" % 0
print "epoch %d" % 1
print "epoch %d" % 2
print "epoch %d" % 3
print "epoch %d" % 4
print "epoch %d" % 5
print "epoch %d" % 6
print "epoch %d" % 7
print "epoch %d" % 8
print "epoch %d" % 9
print "epoch %d" % 10
print "epoch %d" % 11
print "epoch %d" % 12
print "epoch %d" % 13
print "epoch %d" % 14
print "epoch %d" % 15
print "epoch %d" % 16
print "epoch %d" % 17
print "epoch %d" % 18
print "epoch %d" % 19
print "epoch %d" % 20
print "epoch %d" % 21
print "epoch %d" % 22
print "epoch %d" % 23
print "epoch %d" % 24
print "epoch %d" % 25
print "epoch %d" % 26
print "epoch %d" % 27
print "epoch %d" % 28
print "epoch %d" % 29
print "epoch %d" % 30
print "epoch %d" % 31
print "epoch %d" % 32
print "epoch %d" % 33
print "epoch %d" % 34
print "epoch %d" % 35
print "epoch %d" % 36
print "epoch %d" % 37
print "epoch %d" % 38
print "epoch %d" % 39
print "epoch %d" % 40
print "epoch %d" % 41
print "epoch %d" % 42
print "epoch %d" % 43
print "epoch %d" % 44
print "epoch %d" % 45
print "epoch %d" % 46
print "epoch %d" % 47
print "epoch %d" % 48
print "epoch %d" % 49
print "epoch %d" % 50
print "epoch %d" % 51
print "epoch %d" % 52
print "epoch %d" % 53
print "epoch %d" % 54
print "epoch %d" % 55
print "epoch %d" % 56
print "epoch %d" % 57
print "epoch %d" % 58
print "epoch %d" % 59
print "epoch %d" % 60
print "epoch %d" % 61
print "epoch %d" % 62
print "epoch %d" % 63
print "epoch %d" % 64
print "epoch %d" % 65
print "epoch %d" % 66
print "epoch %d" % 67
print "epoch %d" % 68
print "epoch %d" % 69
model.fit(X_train, Y_train, nb_epoch=1)
