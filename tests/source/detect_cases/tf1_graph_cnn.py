import tensorflow as tf

x = tf.placeholder(tf.float32, [None, 28, 28, 1])
W = tf.Variable(tf.truncated_normal([5, 5, 1, 32], stddev=0.1))
h = tf.nn.relu(tf.nn.conv2d(x, W, strides=[1, 1, 1, 1], padding="SAME"))
logits = tf.layers.dense(tf.layers.flatten(h), 10)
loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y_, logits=logits))
train_step = tf.train.AdamOptimizer(1e-4).minimize(loss)
with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    for i in range(1000):
        sess.run(train_step, feed_dict={x: batch_x, y_: batch_y})
