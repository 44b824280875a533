"""The seed notes' workloads; nothing is downloaded.

``xor`` and ``spiral`` are generated, ``digits`` is scikit-learn's bundled set,
``mnist`` reads the files users already have, ``mnist_like`` is random data of
MNIST's shapes for speed runs.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from fastmlp import _checks

MNIST_ENV = "FASTMLP_MNIST"
#: Folders searched for MNIST when no path is given (after ``$FASTMLP_MNIST``).
MNIST_PLACES = ("~/.keras/datasets", "~/data/MNIST/raw", "./data/MNIST/raw", "./data/mnist",
                "~/.cache/fastmlp/mnist")
_IDX_NAMES = {  # split -> (images, labels), without the .gz suffix
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IMAGES_MAGIC, _LABELS_MAGIC = 0x00000803, 0x00000801


def xor(dtype="float64"):
    """The four XOR points and targets: ``X`` (4, 2), ``y`` (4, 1) of ``dtype``."""
    dtype = _checks.float_dtype(dtype)
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype)
    return X, np.array([[0], [1], [1], [0]], dtype)


def spiral(n_per_class=100, n_classes=3, seed=0, dtype="float64"):
    """The seed's spiral arms (CS231n's generator, its legacy random stream).

    Returns ``X`` of shape (n_per_class * n_classes, 2) and int64 labels ``y``.
    With ``seed=0`` it reproduces the seed notebook, which called ``np.random.seed(0)``.
    """
    n = _checks.integer("n_per_class", n_per_class, 1)
    k = _checks.integer("n_classes", n_classes, 1)
    random = np.random.RandomState(_checks.integer("seed", seed, 0))
    X, y = np.zeros((n * k, 2)), np.repeat(np.arange(k), n)
    for j in range(k):
        radius = np.linspace(0.0, 1, n)
        theta = np.linspace(j * 4, (j + 1) * 4, n) + random.randn(n) * 0.2
        X[j * n:(j + 1) * n] = np.c_[radius * np.sin(theta), radius * np.cos(theta)]
    return X.astype(_checks.float_dtype(dtype)), y


def digits(dtype="float64"):
    """scikit-learn's 8x8 handwritten digits, pixels scaled to [0, 1].

    A fixed stratified split (``train_test_split(test_size=0.25, random_state=0)``):
    ``(X_train, y_train), (X_test, y_test)`` with ``X`` of shape (n, 64), 1347 + 450 rows.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    X = (data.data / 16.0).astype(_checks.float_dtype(dtype))
    X_train, X_test, y_train, y_test = train_test_split(
        X, data.target.astype(np.int64), test_size=0.25, random_state=0, stratify=data.target)
    return (X_train, y_train), (X_test, y_test)


def mnist_like(n=1024, seed=0, dtype="float32"):
    """Random data of MNIST's shapes, for timing only: ``X`` (n, 784) in [0, 1), labels 0..9."""
    rng = np.random.default_rng(_checks.integer("seed", seed, 0))
    X = rng.random((_checks.integer("n", n, 1), 784), dtype=_checks.float_dtype(dtype))
    return X, rng.integers(0, 10, n, dtype=np.int64)


def mnist(path=None, dtype="float32"):
    """MNIST from files already on this machine: ``(X_train, y_train), (X_test, y_test)``.

    ``X`` has shape (n, 784) scaled to [0, 1], ``y`` int64. Reads Keras's
    ``mnist.npz`` or the four IDX files (gzipped or not) from ``path`` (a folder
    or an ``.npz`` file), else from ``$FASTMLP_MNIST``, else from ``MNIST_PLACES``.
    Raises FileNotFoundError naming every place it looked.
    """
    dtype = _checks.float_dtype(dtype)
    looked = []
    for place in _candidates(path):
        looked.append(str(place))
        found = _read_npz(place) if place.suffix == ".npz" else _read_idx_folder(place)
        if found is not None:
            return tuple((images.reshape(len(images), 784).astype(dtype) / 255,
                          labels.astype(np.int64)) for images, labels in found)
    raise FileNotFoundError(
        "MNIST files not found; looked for mnist.npz or the four IDX files "
        f"({', '.join(n for pair in _IDX_NAMES.values() for n in pair)}, optionally .gz) in: "
        + "; ".join(looked) + f". Pass mnist(path=...) or set ${MNIST_ENV}.")


def mnist_available(path=None):
    """Whether ``mnist(path)`` would find the files."""
    try:
        mnist(path)
    except FileNotFoundError:
        return False
    return True


def _candidates(path):
    """Files and folders to try, in order: each folder also as ``folder/mnist.npz``."""
    if path is not None:
        places = [path]
    elif os.environ.get(MNIST_ENV):
        places = [os.environ[MNIST_ENV]]
    else:
        places = list(MNIST_PLACES)
    for place in map(lambda p: Path(p).expanduser(), places):
        if place.suffix == ".npz":
            yield place
        else:
            yield place / "mnist.npz"
            yield place


def _read_npz(file):
    if not file.is_file():
        return None
    with np.load(file, allow_pickle=False) as data:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(data.files)
        if missing:
            raise ValueError(f"{file}: expected Keras's arrays x_train, y_train, x_test, y_test; "
                             f"missing {sorted(missing)}")
        return (data["x_train"], data["y_train"]), (data["x_test"], data["y_test"])


def _read_idx_folder(folder):
    files = {name: _idx_file(folder, name) for pair in _IDX_NAMES.values() for name in pair}
    if not folder.is_dir() or None in files.values():
        return None
    splits = []
    for images_name, labels_name in _IDX_NAMES.values():
        images = _read_idx(files[images_name], _IMAGES_MAGIC)
        labels = _read_idx(files[labels_name], _LABELS_MAGIC)
        if len(images) != len(labels):
            raise ValueError(f"{files[images_name]} has {len(images)} images but "
                             f"{files[labels_name]} has {len(labels)} labels")
        splits.append((images, labels))
    return splits


def _idx_file(folder, name):
    """The file for ``name`` in ``folder``: plain, .gz, or with the dotted variant name."""
    dotted = name.replace("-idx", ".idx")
    for candidate in (name, name + ".gz", dotted, dotted + ".gz"):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def _read_idx(file, magic):
    """An IDX array (big-endian header: magic, then one uint32 per dimension)."""
    opener = gzip.open if file.suffix == ".gz" else open
    with opener(file, "rb") as stream:
        raw = stream.read()
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found != magic:
        raise ValueError(f"{file}: expected IDX magic number {magic:#010x}, got "
                         f"{'nothing' if found is None else f'{found:#010x}'}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    header, expected = 4 + 4 * ndim, int(np.prod(dims))
    if len(raw) - header != expected:
        raise ValueError(f"{file}: header promises {expected} bytes of data for shape "
                         f"{tuple(dims)}, the file has {len(raw) - header}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)
