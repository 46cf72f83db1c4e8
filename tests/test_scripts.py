

def test_serve_keras_mnist_from_an_npz_and_a_clear_error_for_a_bad_one(tmp_path):
    import numpy as np

    from mlci.script import mnist_arrays

    arrays = {"x_train": np.zeros((6, 28, 28), "uint8"), "y_train": np.arange(6, dtype="uint8"),
              "x_test": np.ones((2, 28, 28), "uint8"), "y_test": np.arange(2, dtype="uint8")}
    np.savez(tmp_path / "mnist.npz", **arrays)
    (x_train, y_train), (x_test, y_test) = mnist_arrays("mnist.npz", tmp_path)
    assert x_train.shape == (6, 28, 28) and list(y_test) == [0, 1]
    (x_train, y_train), (x_test, y_test) = mnist_arrays("mnist-sample", tmp_path)
    assert (x_train.shape, x_test.shape, x_train.dtype.name) == ((4000, 28, 28), (1000, 28, 28), "uint8")
    with pytest.raises(UsageError) as info:
        mnist_arrays("missing.npz", tmp_path)
    assert info.value.one_line().startswith(f"[data] serve_keras_mnist = 'missing.npz': {tmp_path / 'missing.npz'} "
                                            "is not a readable MNIST .npz (FileNotFoundError")
    assert info.value.one_line().endswith('give "mnist-sample" or an .npz with x_train, y_train, x_test, y_test')


@pytest.mark.slow
def test_keras_datasets_mnist_load_data_returns_the_local_copy_while_served(tmp_path):
    from mlci.script import serve_keras_mnist

    import keras
    import tensorflow as tf

    original = keras.datasets.mnist.load_data
    remove = serve_keras_mnist("mnist-sample", tmp_path, 0)
    try:
        for load in (keras.datasets.mnist.load_data, tf.keras.datasets.mnist.load_data):
            (x_train, _), (x_test, _) = load()
            assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)
    finally:
        remove()
    assert keras.datasets.mnist.load_data is original
