"""gradkit.imagedata: Keras' cache first, then the network, else the digits; always says which."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from gradkit.imagedata import IMAGE_SETS, keras_cache, load_images


def _images(rng, n):
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n).astype(np.uint8)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    root = keras_cache()
    assert root == tmp_path / "keras" / "datasets"
    root.mkdir(parents=True)
    return root


def test_mnist_is_read_from_the_keras_cache(cache):
    rng = np.random.default_rng(0)
    (xtr, ytr), (xte, yte) = _images(rng, 120), _images(rng, 40)
    np.savez(cache / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    d = load_images("mnist", rng=0, download=False)
    assert not d.substitute and d.source.startswith("MNIST (Keras cache")
    assert d.x_train.shape == (120, 784) and d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    # uint8 / 255 in float32 is exact to one rounding: rtol of float32's epsilon
    np.testing.assert_allclose(d.x_train, xtr.reshape(120, -1) / 255.0, rtol=np.finfo(np.float32).eps, atol=0)
    np.testing.assert_array_equal(d.y_test, yte)
    assert "120 training and 40 test images of 784 pixels" in str(d)


def test_fashion_mnist_is_read_from_keras_idx_files(cache):
    rng = np.random.default_rng(1)
    (xtr, ytr), (xte, yte) = _images(rng, 30), _images(rng, 10)
    (cache / "fashion-mnist").mkdir()
    headers = {"labels": b"\0" * 8, "images": b"\0" * 16}
    for rel, arr in zip(IMAGE_SETS["fashion_mnist"], (ytr, xtr, yte, xte)):
        kind = "labels" if "labels" in rel else "images"
        with gzip.open(cache / rel, "wb") as f:
            f.write(headers[kind] + arr.tobytes())
    d = load_images("fashion_mnist", rng=0, download=False)
    assert not d.substitute and d.source.startswith("Fashion-MNIST (Keras cache")
    np.testing.assert_array_equal(np.rint(d.x_test * 255).astype(np.uint8), xte.reshape(10, -1))
    np.testing.assert_array_equal(d.y_train, ytr)


def test_subsets_are_seeded_by_argument(cache):
    rng = np.random.default_rng(2)
    (xtr, ytr), (xte, yte) = _images(rng, 200), _images(rng, 50)
    np.savez(cache / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    a = load_images("mnist", n_train=60, n_test=20, rng=5, download=False)
    b = load_images("mnist", n_train=60, n_test=20, rng=5, download=False)
    c = load_images("mnist", n_train=60, n_test=20, rng=6, download=False)
    assert a.x_train.shape == (60, 784) and a.x_test.shape == (20, 784)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.y_train, c.y_train) or not np.array_equal(a.x_train, c.x_train)


def test_without_the_data_the_digits_stand_in_and_say_why(cache):
    d = load_images("fashion_mnist", n_train=500, rng=0, download=False)
    assert d.substitute and d.x_train.shape == (500, 64) and len(d.x_test) == 449  # round(0.25 * 1797) test images
    assert "digits, standing in for Fashion-MNIST" in d.source and "download=False" in d.source
    assert str(cache) in d.source
    again = load_images("fashion_mnist", n_train=500, rng=0, download=False)
    np.testing.assert_array_equal(d.x_train, again.x_train)


def test_a_damaged_cache_is_named(cache):
    np.savez(cache / "mnist.npz", x_train=np.zeros((3, 5), np.uint8), y_train=np.zeros(3, np.uint8),
             x_test=np.zeros((2, 28, 28), np.uint8), y_test=np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match=r"MNIST in .*datasets.*training images have shape \(3, 5\)"):
        load_images("mnist", download=False)


def test_bad_arguments_are_named(cache):
    with pytest.raises(KeyError, match="cifar"):
        load_images("cifar")
    with pytest.raises(ValueError, match="asked for 0 images"):
        load_images("mnist", n_train=0, download=False)
