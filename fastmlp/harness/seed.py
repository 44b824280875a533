"""The seed notes' five experiments, run with fastmlp: each returns a JSON-able result.

1. XOR: the least-squares linear model, the hand-set ReLU network, learning it from
   random starts. 2. Spiral: linear softmax against a 2-100-3 ReLU network (CS231n's
   recipe, which the notes' code comes from). 3. Activations and their derivatives,
   and the gradient per layer of a deep sigmoid and a deep ReLU network. 4. MNIST
   784-512-512-10 with the notes' Keras recipe: plain, dropout 0.5, L2, L1.
   5. The optimizer comparison of the notes' ``run_network``.

Settings live in the dicts below (``quick`` cuts them down); the notes' own figures
are in ``NOTES``, so the report can print both side by side.
"""
from __future__ import annotations

import time

import numpy as np

from fastmlp import MLP, backends, datasets, optim
from fastmlp.backends.contract import ACTIVATIONS
from fastmlp.harness.convergence import rounded

#: What the notes (and CS231n's case study, for the spiral) report.
NOTES = {
    "xor_linear": dict(w=(0.0, 0.0), b=0.5),
    "spiral": {"linear": 0.49, "2-100-3": 0.98},  # training accuracy, CS231n
    "plain": dict(test_loss=0.0791, test_accuracy=0.9747),  # model.evaluate on the test set
    "dropout 0.5": dict(train_loss=0.0722, train_accuracy=0.9796),  # last epoch's log line
}

#: XOR as the notes pose it: 2-2-1 ReLU, linear output, MSE, all four points in each step.
XOR = dict(seeds=100, steps=2000, lr=0.1, tolerance=0.1)
#: CS231n's spiral recipe: full-batch gradient descent, step 1, 0.5 * 1e-3 * ||W||^2.
SPIRAL = dict(lr=1.0, l2=1e-3, steps={"linear": 200, "2-100-3": 10000}, grid=200)
#: A deep network at its initialisation, one batch of digits.
GRADIENTS = dict(depth=8, width=64, batch=256, activations=("sigmoid", "relu"))
#: The notes' MNIST network and Keras recipe: RMSprop(lr=1e-3, rho=0.9, epsilon=1e-7).
OVERFIT = dict(sizes=(784, 512, 512, 10), epochs=20, batch_size=256, lr=1e-3, near_zero=1e-3,
               variants={"plain": {}, "dropout 0.5": dict(dropout=0.5), "L2": dict(l2=1e-3),
                         "L1": dict(l1=1e-5)})
#: The notes' ``run_network``: 784-500-300-10, dropout 0.4, each optimizer at lr 1e-2.
OPTIMIZERS = dict(sizes=(784, 500, 300, 10), dropout=0.4, lr=1e-2, epochs=20, batch_size=256)

#: Keras 2's updates (the notes' version: ``keras.layers.core``, ``lr=``) in fastmlp terms:
#: epsilon 1e-7, RMSprop's rho 0.9, Adagrad's accumulator starting at 0.
KERAS = {
    "SGD": lambda lr: optim.SGD(lr),
    "RMSprop": lambda lr: optim.RMSprop(lr, alpha=0.9, eps=1e-7),
    "Adam": lambda lr: optim.Adam(lr, eps=1e-7),
    "Adagrad": lambda lr: optim.Adagrad(lr, eps=1e-7),
}

#: Goodfellow et al.'s solution (section 6.1): h = relu(x W + c), y = h w + b.
XOR_HAND = dict(W=[[1.0, 1.0], [1.0, 1.0]], c=[0.0, -1.0], w=[[1.0], [-2.0]], b=[0.0])


#: What ``--quick`` replaces in each experiment's settings (seconds in all).
QUICK = {"xor": dict(seeds=4, steps=200), "spiral": dict(steps={"linear": 50, "2-100-3": 300}),
         "overfit": dict(sizes=(784, 32, 32, 10), epochs=2),
         "optimizers": dict(sizes=(784, 32, 16, 10), epochs=1)}


def xor(backend, settings=XOR):
    """The linear least-squares fit, the hand-set network and the success rate of learning."""
    X, y = datasets.xor()
    w_b = np.linalg.lstsq(np.c_[X, np.ones(4)], y, rcond=None)[0].ravel()
    hand = MLP([2, 2, 1], output="identity", loss="mse", backend=backend, dtype="float64")
    for param, value in zip(hand.params, XOR_HAND.values()):
        param[...] = value
    endings = []
    for seed in range(settings["seeds"]):
        model = MLP([2, 2, 1], output="identity", loss="mse", backend=backend,
                    dtype="float64", seed=seed)
        step = model.make_step(X, y, optim.SGD(settings["lr"]))
        for _ in range(settings["steps"]):
            step()
        endings.append(model.forward(X).ravel())
    endings = np.array(endings)
    learned = np.max(np.abs(endings - y.ravel()), axis=1) < settings["tolerance"]
    mse = np.round(np.mean((endings - y.ravel()) ** 2, axis=1), 3)
    w_b = w_b.round(12) + 0.0  # + 0.0: no "-0" in the report
    return dict(linear_w=w_b[:2].tolist(), linear_b=float(w_b[2]),
                linear_output=(np.c_[X, np.ones(4)] @ w_b).tolist(),
                hand_hidden=np.maximum(X @ hand.params[0] + hand.params[1], 0).tolist(),
                hand_output=hand.forward(X).ravel().tolist(), settings=settings,
                successes=int(learned.sum()),
                final_mse={f"{v:g}": int((mse == v).sum()) for v in np.unique(mse)})


def spiral(backend, settings=SPIRAL):
    """Linear softmax and the 2-100-3 ReLU net on the spiral, and their class maps."""
    X, y = datasets.spiral()
    lim = np.linspace(-1, 1, settings["grid"])
    grid = np.stack(np.meshgrid(lim, lim), -1).reshape(-1, 2)
    out = {}
    for name, sizes in (("linear", (2, 3)), ("2-100-3", (2, 100, 3))):
        model = MLP(sizes, backend=backend, dtype="float64", l2=settings["l2"], seed=0)
        step = model.make_step(X, y, optim.SGD(settings["lr"]))
        started = time.perf_counter()
        for _ in range(settings["steps"][name]):
            step()
        scores = model.evaluate(X, y)
        out[name] = dict(steps=settings["steps"][name], seconds=time.perf_counter() - started,
                         loss=scores["loss"], accuracy=scores["accuracy"],
                         classes=model.predict(grid).reshape(len(lim), len(lim)).tolist())
    return out


def activations(backend, z=np.linspace(-5, 5, 201)):
    """Each hidden activation and its derivative, computed by ``backend``'s kernels."""
    kernels = backends.get(backend)
    Z = z[None, :].copy()
    out = {"z": z.tolist()}
    for name in ("sigmoid", "tanh", "relu"):
        code = ACTIVATIONS.index(name)
        A = kernels.activation_forward(code, Z, np.empty_like(Z))
        dA = kernels.activation_backward(code, A, np.ones_like(Z), np.empty_like(Z))
        out[name] = dict(value=A.ravel().tolist(), derivative=dA.ravel().tolist())
    return out


def gradients(backend, data, settings=GRADIENTS):
    """RMS of each layer's weight gradient in a deep net at initialisation, per activation."""
    (X, y), _ = data
    X, y = X[:settings["batch"]], y[:settings["batch"]]
    sizes = [X.shape[1]] + [settings["width"]] * settings["depth"] + [10]
    out = {"sizes": sizes}
    for activation in settings["activations"]:
        model = MLP(sizes, activation=activation, backend=backend, seed=0)
        _, grads = model.loss_and_grads(X, y)
        out[activation] = [float(np.sqrt(np.mean(g.astype(np.float64) ** 2)))
                           for g in grads[::2]]
    return out


def overfit(backend, data, variant, settings=OVERFIT):
    """One of the notes' 784-512-512-10 runs: curves per epoch and final test figures."""
    (X, y), (Xt, yt) = data
    model = MLP(settings["sizes"], backend=backend, seed=0, **settings["variants"][variant])
    result = _fit(model, data, KERAS["RMSprop"](settings["lr"]), settings)
    weights = np.concatenate([W.ravel() for W in model.params[::2]])
    return dict(result, near_zero=float(np.mean(np.abs(weights) < settings["near_zero"])))


def optimizer(backend, data, name, settings=OPTIMIZERS):
    """The notes' ``run_network(Optimizer=name)``: loss per batch and test figures."""
    model = MLP(settings["sizes"], backend=backend, dropout=settings["dropout"], seed=0)
    return _fit(model, data, KERAS[name](settings["lr"]), settings)


def _fit(model, data, opt, settings):
    (X, y), (Xt, yt) = data
    started = time.perf_counter()
    history = model.fit(X, y, optimizer=opt, epochs=settings["epochs"],
                        batch_size=settings["batch_size"], validation_data=(Xt, yt))
    seconds = time.perf_counter() - started
    frame = history.to_frame().drop(columns="seconds")
    test = model.evaluate(Xt, yt)
    p = model.predict_proba(Xt)[np.arange(len(yt)), yt].astype(np.float64)
    return dict(curves={k: rounded(v) for k, v in frame.to_dict(orient="list").items()},
                batch_losses=rounded(history.batch_losses), seconds=seconds,
                test_loss=test["loss"], test_cross_entropy=float(-np.mean(np.log(p))),
                test_accuracy=test["accuracy"], steps=len(history.batch_losses),
                sizes=list(model.sizes), epochs=settings["epochs"])


def digits_data(path=None):
    """``(data, source, why)``: MNIST when ``datasets.mnist`` finds it, else
    ``mnist_sample()``; ``why``: the error that made it the sample ("" for MNIST)."""
    try:
        return datasets.mnist(path), "MNIST", ""
    except FileNotFoundError:
        return datasets.mnist_sample(), "sample", "no MNIST files were found"
    except ValueError as error:
        return datasets.mnist_sample(), "sample", str(error)


def jobs(backend, quick_mode=False):
    """``(key, callable)`` pairs for the report, in the order of the section."""
    cut = QUICK if quick_mode else {}
    settings = {name: dict(base, **cut.get(name, {})) for name, base in
                (("xor", XOR), ("spiral", SPIRAL), ("overfit", OVERFIT),
                 ("optimizers", OPTIMIZERS))}
    cache = {}

    def data():
        if "data" not in cache:
            cache["data"], cache["source"], cache["why"] = digits_data()
        return cache["data"]

    def describe():
        (_, y), (_, yt) = data()
        return dict(source=cache["source"], why=cache["why"], train=len(y), test=len(yt))

    out = [("data", describe), ("xor", lambda: xor(backend, settings["xor"])),
           ("spiral", lambda: spiral(backend, settings["spiral"])),
           ("activations", lambda: activations(backend)),
           ("gradients", lambda: gradients(backend, data()))]
    out += [(f"overfit/{v}", lambda v=v: overfit(backend, data(), v, settings["overfit"]))
            for v in OVERFIT["variants"]]
    out += [(f"optimizers/{name}", lambda n=name: optimizer(backend, data(), n,
                                                            settings["optimizers"]))
            for name in KERAS]
    return out
