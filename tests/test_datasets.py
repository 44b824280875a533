"""Data sets: generated ones reproduce the seed, MNIST is read from files the tests write."""
import gzip
from pathlib import Path

import numpy as np
import pytest

from fastmlp import datasets


def seed_notebook_spiral():
    """The seed's code, as written there."""
    np.random.seed(0)
    N, D, K = 100, 2, 3
    X, y = np.zeros((N * K, D)), np.zeros(N * K, dtype="uint8")
    for j in range(K):
        ix = range(N * j, N * (j + 1))
        r = np.linspace(0.0, 1, N)
        t = np.linspace(j * 4, (j + 1) * 4, N) + np.random.randn(N) * 0.2
        X[ix] = np.c_[r * np.sin(t), r * np.cos(t)]
        y[ix] = j
    return X, y


def test_xor():
    X, y = datasets.xor()
    assert X.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert y.ravel().tolist() == [0, 1, 1, 0]


def test_spiral_reproduces_the_seed_notebook():
    X, y = datasets.spiral()
    X_seed, y_seed = seed_notebook_spiral()
    np.testing.assert_array_equal(X, X_seed)
    np.testing.assert_array_equal(y, y_seed)
    assert y.dtype == np.int64
    assert not np.array_equal(datasets.spiral(seed=1)[0], X)
    assert datasets.spiral(10, 4, dtype="float32")[0].shape == (40, 2)
    assert datasets.spiral(10, 4, dtype="float32")[0].dtype == np.float32


def test_digits_split_is_fixed_and_stratified():
    (X_train, y_train), (X_test, y_test) = datasets.digits()
    assert X_train.shape == (1347, 64) and X_test.shape == (450, 64)
    assert 0 <= X_train.min() and X_train.max() <= 1
    (X_again, _), _ = datasets.digits(dtype="float32")
    np.testing.assert_allclose(X_again, X_train, rtol=1e-6)
    assert X_again.dtype == np.float32
    train_share = np.bincount(y_train) / len(y_train)
    test_share = np.bincount(y_test) / len(y_test)
    assert np.abs(train_share - test_share).max() < 0.01


def test_mnist_like_has_mnists_shapes():
    X, y = datasets.mnist_like(50, seed=3)
    assert X.shape == (50, 784) and X.dtype == np.float32 and y.shape == (50,)
    assert 0 <= X.min() and X.max() < 1 and set(y) <= set(range(10))
    np.testing.assert_array_equal(datasets.mnist_like(50, seed=3)[0], X)


@pytest.mark.parametrize("call, message", [
    (lambda: datasets.spiral(0), "n_per_class must be >= 1"),
    (lambda: datasets.spiral(n_classes=2.5), "n_classes must be an integer"),
    (lambda: datasets.mnist_like(10, dtype="int8"), "dtype must be 'float32' or 'float64'"),
    (lambda: datasets.mnist_like(-1), "n must be >= 1"),
])
def test_bad_arguments_are_named(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


# ---------------------------------------------------------------- MNIST files

TRAIN, TEST = 5, 3


def fake_split(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def idx_bytes(array, magic):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_idx(folder, compress=False, dotted=False):
    folder.mkdir(parents=True, exist_ok=True)
    splits = {"train": fake_split(TRAIN, 0), "t10k": fake_split(TEST, 1)}
    for prefix, (images, labels) in splits.items():
        for kind, array, magic in (("images-idx3", images, 0x803), ("labels-idx1", labels, 0x801)):
            name = f"{prefix}-{kind}-ubyte"
            if dotted:
                name = name.replace("-idx", ".idx")
            data = idx_bytes(array, magic)
            if compress:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
    return splits


def check_loaded(loaded, splits):
    (X_train, y_train), (X_test, y_test) = loaded
    assert X_train.shape == (TRAIN, 784) and X_test.shape == (TEST, 784)
    np.testing.assert_allclose(X_train, splits["train"][0].reshape(TRAIN, 784) / 255, rtol=1e-6)
    assert y_train.tolist() == splits["train"][1].tolist()
    assert y_test.tolist() == splits["t10k"][1].tolist()
    assert X_train.dtype == np.float32 and y_train.dtype == np.int64


@pytest.mark.parametrize("compress, dotted", [(False, False), (True, False), (False, True)],
                         ids=["idx", "idx.gz", "dotted-names"])
def test_mnist_reads_idx_files(tmp_path, compress, dotted):
    splits = write_idx(tmp_path, compress, dotted)
    check_loaded(datasets.mnist(tmp_path), splits)
    assert datasets.mnist_available(tmp_path)


def test_mnist_reads_keras_npz_from_a_file_or_folder(tmp_path):
    (xtr, ytr), (xte, yte) = fake_split(TRAIN, 0), fake_split(TEST, 1)
    np.savez(tmp_path / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    splits = {"train": (xtr, ytr), "t10k": (xte, yte)}
    check_loaded(datasets.mnist(tmp_path / "mnist.npz"), splits)
    check_loaded(datasets.mnist(tmp_path), splits)


def test_mnist_uses_the_environment_variable(tmp_path, monkeypatch):
    splits = write_idx(tmp_path / "files")
    monkeypatch.setenv("FASTMLP_MNIST", str(tmp_path / "files"))
    check_loaded(datasets.mnist(), splits)


def test_missing_mnist_names_every_place_looked(tmp_path, monkeypatch):
    monkeypatch.delenv("FASTMLP_MNIST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        datasets.mnist()
    for place in datasets.MNIST_PLACES:
        assert str(Path(place).expanduser()) in str(info.value)
    assert "FASTMLP_MNIST" in str(info.value)
    assert not datasets.mnist_available()


def test_corrupt_idx_files_are_named(tmp_path):
    write_idx(tmp_path)
    labels = tmp_path / "train-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(np.zeros(TRAIN + 1, np.uint8), 0x801))
    with pytest.raises(ValueError, match="has 5 images but .*train-labels-idx1-ubyte has 6 labels"):
        datasets.mnist(tmp_path)
    labels.write_bytes(idx_bytes(np.zeros(TRAIN, np.uint8), 0x801)[:-2])
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte: header promises 5 bytes"):
        datasets.mnist(tmp_path)
    labels.write_bytes(idx_bytes(np.zeros(TRAIN, np.uint8), 0x803))
    with pytest.raises(ValueError, match="expected IDX magic number 0x00000801, got 0x00000803"):
        datasets.mnist(tmp_path)
