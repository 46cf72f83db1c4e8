from keras.layers import Input, Dense, Reshape, Flatten, Conv2DTranspose, Conv2D, LeakyReLU
from keras.models import Sequential, Model

class GAN():
    def __init__(self):
        self.discriminator = self.build_discriminator()
        self.generator = self.build_generator()
        z = Input(shape=(100,))
        img = self.generator(z)
        self.combined = Model(z, self.discriminator(img))

    def build_generator(self):
        model = Sequential()
        model.add(Dense(128 * 7 * 7, input_dim=100))
        model.add(Reshape((7, 7, 128)))
        model.add(Conv2DTranspose(64, 3, strides=2, padding="same"))
        return model

    def build_discriminator(self):
        model = Sequential()
        model.add(Conv2D(32, 3, strides=2, input_shape=(28, 28, 1)))
        model.add(Flatten())
        model.add(Dense(1, activation='sigmoid'))
        return model

    def train(self, epochs):
        for epoch in range(epochs):
            d_loss = self.discriminator.train_on_batch(imgs, valid)
            g_loss = self.combined.train_on_batch(noise, valid)

if __name__ == '__main__':
    gan = GAN()
    gan.train(epochs=30000)
