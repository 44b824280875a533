"""Data sets: generated ones reproduce the seed, MNIST is read from files the tests write."""
import gzip
from pathlib import Path

import numpy as np
import pytest

from fastmlp import datasets


def seed_notebook_spiral(seed=0, N=100, K=3):
    """The seed notebook's code, as written there (global legacy stream), state restored."""
    saved = np.random.get_state()
    try:
        np.random.seed(seed)
        X, y = np.zeros((N * K, 2)), np.zeros(N * K, dtype="uint8")
        for j in range(K):
            ix = range(N * j, N * (j + 1))
            r = np.linspace(0.0, 1, N)
            t = np.linspace(j * 4, (j + 1) * 4, N) + np.random.randn(N) * 0.2
            X[ix] = np.c_[r * np.sin(t), r * np.cos(t)]
            y[ix] = j
        return X, y
    finally:
        np.random.set_state(saved)


def test_xor():
    X, y = datasets.xor()
    assert X.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert y.shape == (4, 1) and y.ravel().tolist() == [0, 1, 1, 0]
    assert X.dtype == y.dtype == np.float64
    assert datasets.xor(np.float32)[1].dtype == np.float32


@pytest.mark.parametrize("seed, n, k", [(0, 100, 3), (7, 13, 5)])
def test_spiral_reproduces_the_seed_notebook(seed, n, k):
    X, y = datasets.spiral(n, k, seed=seed)
    X_seed, y_seed = seed_notebook_spiral(seed, n, k)
    np.testing.assert_array_equal(X, X_seed)
    np.testing.assert_array_equal(y, y_seed)
    assert X.shape == (n * k, 2) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [n] * k


def test_spiral_seeds_dtype_and_radii():
    X, y = datasets.spiral(20, 4, seed=1)
    assert not np.array_equal(datasets.spiral(20, 4, seed=2)[0], X)
    np.testing.assert_array_equal(datasets.spiral(20, 4, seed=1)[0], X)
    X32 = datasets.spiral(20, 4, seed=1, dtype="float32")[0]
    assert X32.dtype == np.float32
    np.testing.assert_array_equal(X32, X.astype(np.float32))
    for j in range(4):  # each arm's radius runs 0..1 whatever the angle noise
        np.testing.assert_allclose(np.hypot(*X[y == j].T), np.linspace(0, 1, 20), atol=1e-12)


def test_digits_split_is_fixed_stratified_and_complete():
    from sklearn.datasets import load_digits

    (X_train, y_train), (X_test, y_test) = datasets.digits()
    assert X_train.shape == (1347, 64) and X_test.shape == (450, 64)
    assert X_train.dtype == np.float64 and y_train.dtype == y_test.dtype == np.int64
    assert X_train.min() == 0 and X_train.max() == 1 and 0 <= X_test.min() <= X_test.max() <= 1
    everything = load_digits()  # the two parts are exactly the 1797 images, each once
    merged = np.vstack([X_train, X_test]) * 16
    assert sorted(map(tuple, merged)) == sorted(map(tuple, everything.data))
    assert np.bincount(np.concatenate([y_train, y_test])).tolist() == \
        np.bincount(everything.target).tolist()
    per_class = np.bincount(everything.target)  # stratified: each class ~25% in test
    assert np.all(np.abs(np.bincount(y_test) - 0.25 * per_class) <= 1)
    (X_again, y_again), (X_test32, _) = datasets.digits(dtype="float32")
    assert X_again.dtype == X_test32.dtype == np.float32
    np.testing.assert_array_equal(X_again, X_train.astype(np.float32))
    np.testing.assert_array_equal(y_again, y_train)


def test_mnist_like_has_mnists_shapes():
    X, y = datasets.mnist_like(50, seed=3)
    assert X.shape == (50, 784) and X.dtype == np.float32 and y.shape == (50,)
    assert y.dtype == np.int64 and 0 <= X.min() and X.max() < 1 and set(y) <= set(range(10))
    again = datasets.mnist_like(50, seed=3)
    np.testing.assert_array_equal(again[0], X)
    np.testing.assert_array_equal(again[1], y)
    assert not np.array_equal(datasets.mnist_like(50, seed=4)[0], X)
    assert datasets.mnist_like(2, dtype=np.float64)[0].dtype == np.float64


@pytest.mark.parametrize("call, name", [
    (lambda: datasets.spiral(0), "n_per_class must be >= 1"),
    (lambda: datasets.spiral(-3), "n_per_class must be >= 1"),
    (lambda: datasets.spiral(n_classes=2.5), "n_classes must be an integer"),
    (lambda: datasets.spiral(n_classes=True), "n_classes must be an integer"),
    (lambda: datasets.spiral(seed=-1), "seed must be in"),
    (lambda: datasets.mnist_like(-1), "n must be >= 1"),
    (lambda: datasets.mnist_like("10"), "n must be an integer"),
    (lambda: datasets.mnist_like(10, dtype="int8"), "dtype must be .*, got 'int8'"),
    (lambda: datasets.spiral(dtype="float16"), "dtype must be 'float32' or 'float64'"),
    (lambda: datasets.xor(np.int32), "dtype must be 'float32' or 'float64'"),
    (lambda: datasets.digits(dtype="banana"), "dtype must be .*'banana'"),
    (lambda: datasets.mnist(dtype="uint8"), "dtype must be 'float32' or 'float64'"),
])
def test_bad_arguments_are_value_errors_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ---------------------------------------------------------------- MNIST files

TRAIN, TEST = 5, 3
IMAGES, LABELS = 0x803, 0x801


def fake_split(n, seed):
    """``n`` 28x28 uint8 images with known corner pixels 0 and 255, and labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    images[:, 0, 0], images[:, 27, 27] = 0, 255
    return images, rng.integers(0, 10, n).astype(np.uint8)


def idx_bytes(array, magic):
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape) \
        + array.tobytes()


def write_idx(folder, compress=False, dotted=False, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    splits = {"train": fake_split(TRAIN, seed), "t10k": fake_split(TEST, seed + 1)}
    for prefix, (images, labels) in splits.items():
        for kind, array, magic in (("images-idx3", images, IMAGES),
                                   ("labels-idx1", labels, LABELS)):
            name = f"{prefix}-{kind}-ubyte".replace("-idx", ".idx" if dotted else "-idx")
            data = idx_bytes(array, magic)
            if compress:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
    return splits


def write_npz(file, seed=0):
    file.parent.mkdir(parents=True, exist_ok=True)
    (xtr, ytr), (xte, yte) = fake_split(TRAIN, seed), fake_split(TEST, seed + 1)
    np.savez(file, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    return {"train": (xtr, ytr), "t10k": (xte, yte)}


def check_loaded(loaded, splits, dtype=np.float32):
    for (X, y), (images, labels) in zip(loaded, (splits["train"], splits["t10k"])):
        assert X.shape == (len(images), 784) and y.shape == (len(images),)
        assert X.dtype == dtype and y.dtype == np.int64
        assert X[:, 0].tolist() == [0] * len(X) and X[:, -1].tolist() == [1] * len(X)
        np.testing.assert_array_equal(np.rint(X * 255), images.reshape(len(images), 784))
        assert y.tolist() == labels.tolist()


@pytest.fixture
def no_caches(tmp_path, monkeypatch):
    """An empty home and working folder, no $FASTMLP_MNIST: no real MNIST can interfere."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.delenv("FASTMLP_MNIST", raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home)
    return home


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("dotted", [False, True], ids=["dashed", "dotted"])
def test_mnist_reads_idx_files(tmp_path, compress, dotted):
    splits = write_idx(tmp_path, compress, dotted)
    check_loaded(datasets.mnist(tmp_path), splits)
    check_loaded(datasets.mnist(str(tmp_path), dtype="float64"), splits, np.float64)
    assert datasets.mnist_available(tmp_path)


def test_mnist_reads_keras_npz_from_a_file_or_folder(tmp_path):
    splits = write_npz(tmp_path / "mnist.npz")
    check_loaded(datasets.mnist(tmp_path / "mnist.npz"), splits)
    check_loaded(datasets.mnist(tmp_path), splits)
    write_idx(tmp_path, seed=10)  # both formats in one folder: mnist.npz wins
    check_loaded(datasets.mnist(tmp_path), splits)


@pytest.mark.parametrize("target", ["folder", "npz"])
def test_mnist_uses_the_environment_variable(no_caches, tmp_path, monkeypatch, target):
    if target == "folder":
        splits, place = write_idx(tmp_path / "files"), tmp_path / "files"
    else:
        splits, place = write_npz(tmp_path / "elsewhere.npz"), tmp_path / "elsewhere.npz"
    monkeypatch.setenv("FASTMLP_MNIST", str(place))
    check_loaded(datasets.mnist(), splits)
    assert datasets.mnist_available()


def test_environment_variable_comes_before_the_caches(no_caches, tmp_path, monkeypatch):
    cached = write_npz(no_caches / ".keras" / "datasets" / "mnist.npz", seed=20)
    check_loaded(datasets.mnist(), cached)
    env = write_idx(tmp_path / "env", seed=30)
    monkeypatch.setenv("FASTMLP_MNIST", str(tmp_path / "env"))
    check_loaded(datasets.mnist(), env)
    monkeypatch.setenv("FASTMLP_MNIST", str(tmp_path / "gone"))  # falls back to the caches
    check_loaded(datasets.mnist(), cached)
    explicit = write_idx(tmp_path / "explicit", seed=40)  # a path beats both
    check_loaded(datasets.mnist(tmp_path / "explicit"), explicit)


def test_mnist_finds_torchvisions_raw_folder_under_home(no_caches):
    splits = write_idx(no_caches / "data" / "MNIST" / "raw", compress=True)
    check_loaded(datasets.mnist(), splits)


def test_missing_mnist_names_every_place_looked(no_caches, tmp_path, monkeypatch):
    monkeypatch.setenv("FASTMLP_MNIST", str(tmp_path / "nowhere"))
    assert not datasets.mnist_available()
    with pytest.raises(FileNotFoundError) as info:
        datasets.mnist()
    message = str(info.value)
    for place in (tmp_path / "nowhere",) + datasets.MNIST_PLACES:
        folder = Path(place).expanduser().absolute()
        assert str(folder) in message and str(folder / "mnist.npz") in message
    assert str(no_caches / ".keras" / "datasets" / "mnist.npz") in message
    assert "FASTMLP_MNIST" in message and "path=" in message
    assert message.index("nowhere") < message.index(".keras")  # listed in search order


def test_explicit_path_is_the_only_place_looked(no_caches, tmp_path, monkeypatch):
    write_idx(tmp_path / "env")
    monkeypatch.setenv("FASTMLP_MNIST", str(tmp_path / "env"))
    with pytest.raises(FileNotFoundError, match="looked for .* in: [^;]*missing.npz\\. Pass"):
        datasets.mnist(tmp_path / "missing.npz")
    assert not datasets.mnist_available(tmp_path / "missing.npz")


def test_a_folder_with_some_idx_files_says_which(tmp_path):
    write_idx(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="only train-images-idx3-ubyte, .*t10k-images"):
        datasets.mnist(tmp_path)


TRAIN_LABELS, TEST_IMAGES = "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"
ZERO_LABELS, ZERO_IMAGES = np.zeros(TRAIN, np.uint8), np.zeros((TEST, 28, 28), np.uint8)


@pytest.mark.parametrize("name, data, message", [
    (TRAIN_LABELS, idx_bytes(np.zeros(TRAIN + 1, np.uint8), LABELS),
     f"has 5 images but .*{TRAIN_LABELS} has 6 labels"),
    (TRAIN_LABELS, idx_bytes(ZERO_LABELS, LABELS)[:-2],
     f"{TRAIN_LABELS}: expected 5 bytes of data for shape \\(5,\\), found 3"),
    (TEST_IMAGES, idx_bytes(ZERO_IMAGES, IMAGES)[:10],
     f"{TEST_IMAGES}: truncated IDX header: expected 16 bytes, found 10"),
    (TRAIN_LABELS, idx_bytes(ZERO_LABELS, IMAGES),
     f"{TRAIN_LABELS}: expected IDX magic number 0x00000801, found 0x00000803"),
    ("train-images-idx3-ubyte", b"",
     "train-images-idx3-ubyte: expected IDX magic number 0x00000803, found a 0-byte file"),
    (TEST_IMAGES, idx_bytes(np.zeros((TEST, 14, 14), np.uint8), IMAGES),
     f"{TEST_IMAGES}: expected uint8 images of shape \\(n, 28, 28\\), found .*\\(3, 14, 14\\)"),
], ids=["count-mismatch", "truncated-data", "truncated-header", "bad-magic", "empty", "wrong-size"])
def test_corrupt_idx_files_are_named(tmp_path, name, data, message):
    write_idx(tmp_path)
    (tmp_path / name).write_bytes(data)
    assert datasets.mnist_available(tmp_path)  # found; reading is what fails, loudly
    with pytest.raises(ValueError, match=message):
        datasets.mnist(tmp_path)


def test_corrupt_gzip_is_named(tmp_path):
    write_idx(tmp_path, compress=True)
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-12])
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz: not a readable gzip file"):
        datasets.mnist(tmp_path)


def test_bad_npz_is_named(tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8))
    missing = "mnist.npz: expected .* missing \\['x_test', 'y_test', 'y_train'\\]"
    with pytest.raises(ValueError, match=missing):
        datasets.mnist(tmp_path)
    (xtr, ytr), (xte, yte) = fake_split(TRAIN, 0), fake_split(TEST, 1)
    np.savez(tmp_path / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte / 255, y_test=yte)
    with pytest.raises(ValueError, match="mnist.npz\\[x_test\\]: expected uint8 images"):
        datasets.mnist(tmp_path)
    np.savez(tmp_path / "mnist.npz", x_train=xtr, y_train=ytr[:-1], x_test=xte, y_test=yte)
    with pytest.raises(ValueError, match="\\[x_train\\] has 5 images but .*\\[y_train\\] has 4"):
        datasets.mnist(tmp_path)


def test_mnist_sample_is_real_mnist_split_by_digit():
    (X_train, y_train), (X_test, y_test) = datasets.mnist_sample()
    assert X_train.shape == (4000, 784) and X_test.shape == (1000, 784)
    assert X_train.dtype == X_test.dtype == np.float32
    assert y_train.dtype == y_test.dtype == np.int64 and y_train.shape == (4000,)
    assert X_train.min() == 0 and X_train.max() == 1 and 0 <= X_test.min() <= X_test.max() <= 1
    np.testing.assert_array_equal(np.rint(X_train * 255) / 255, X_train)  # whole pixel levels
    assert np.bincount(y_train).tolist() == [400] * 10  # stratified: 400 + 100 per digit
    assert np.bincount(y_test).tolist() == [100] * 10
    everything = np.vstack([X_train, X_test])  # each of the 5,000 images exactly once
    assert len(np.unique(everything, axis=0)) == 5000
    # real digits, not noise: most pixels are background, and the mean images of two
    # digits differ where their strokes do (a 1 is narrow, a 0 is a ring)
    assert 0.7 < np.mean(X_train == 0) < 0.9
    ones, zeros = X_train[y_train == 1].mean(0), X_train[y_train == 0].mean(0)
    assert ones.reshape(28, 28)[:, 14].mean() > zeros.reshape(28, 28)[:, 14].mean()


def test_mnist_sample_split_is_fixed_and_dtype_follows():
    (X1, y1), (T1, t1) = datasets.mnist_sample()
    (X2, y2), (T2, t2) = datasets.mnist_sample(dtype="float64")
    assert X2.dtype == T2.dtype == np.float64
    np.testing.assert_array_equal(X2.astype(np.float32), X1)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(t1, t2)
    X1[0, 0] = 0.5  # the caller owns its arrays: a later call is unchanged
    assert datasets.mnist_sample()[0][0][0, 0] == X2[0, 0]
    with pytest.raises(ValueError, match="dtype"):
        datasets.mnist_sample(dtype="int8")


@pytest.mark.parametrize("content, compress, message", [
    (b"hello world, not digits", False, "found, but it is not MNIST: .* are 0x68656c6c"),
    (b"hello world, not digits", True, "found, but it is not MNIST: .* after gunzip are "
                                       "0x68656c6c"),
    (b"x", True, "found, but it is not MNIST: .*holds only 1 bytes after gunzip"),
    (idx_bytes(ZERO_LABELS, LABELS), True, "found, and it is one MNIST IDX file; .* folder "
                                           "holding all four"),
], ids=["text", "gzipped-text", "tiny-gzip", "one-idx-file"])
def test_an_existing_file_that_is_not_mnist_says_so(tmp_path, content, compress, message):
    file = tmp_path / "some.gz"
    file.write_bytes(gzip.compress(content) if compress else content)
    with pytest.raises(ValueError, match=f"{file}: {message}"):
        datasets.mnist(file)
    with pytest.raises(ValueError, match="not MNIST|one MNIST IDX file"):
        datasets.mnist(str(file))
    assert not datasets.mnist_available(file)


def test_an_npz_that_is_not_mnist_says_so(tmp_path):
    text = tmp_path / "text.npz"
    text.write_bytes(b"plain text")
    with pytest.raises(ValueError, match=f"{text}: found, but not a readable .npz file"):
        datasets.mnist(text)
    single = tmp_path / "single.npz"
    with open(single, "wb") as handle:  # np.save writes one .npy array whatever the name
        np.save(handle, np.zeros(3))
    with pytest.raises(ValueError, match=f"{single}: found, but it holds one array"):
        datasets.mnist(single)
