"""Figures of the report's "The seed, reproduced" section; each function saves one PNG."""
from __future__ import annotations

import numpy as np
from matplotlib.colors import ListedColormap

from fastmlp import datasets
from fastmlp.harness.plots import plt, save

#: The notes' colours: training red, validation blue.
TRAIN, VALIDATION = "tab:red", "tab:blue"


def xor(result, path):
    """Input space with the linear fit, the hand-set net's hidden space, random-start endings."""
    X, y = datasets.xor()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    colours = np.where(y.ravel() > 0.5, "tab:orange", "tab:blue")
    ax = axes[0]
    ax.scatter(*X.T, c=colours, s=120, edgecolor="k", zorder=3)
    for (a, b), out in zip(X, result["linear_output"]):
        ax.annotate(f"{out:.2f}", (a, b), textcoords="offset points", xytext=(10, 8))
    ax.set(title=f"least squares: w = ({result['linear_w'][0]:.2g}, "
                 f"{result['linear_w'][1]:.2g}), b = {result['linear_b']:.2g}",
           xlabel="x1", ylabel="x2", xlim=(-0.4, 1.5), ylim=(-0.4, 1.4))
    ax = axes[1]
    H = np.array(result["hand_hidden"])
    ax.scatter(*H.T, c=colours, s=120, edgecolor="k", zorder=3)
    h1 = np.linspace(-0.2, 2.2, 2)
    ax.plot(h1, (h1 - 0.5) / 2, "k--", lw=1, label="h1 - 2 h2 = 0.5")
    for h, out in zip(H, result["hand_output"]):
        ax.annotate(f"f = {out:g}", h, textcoords="offset points", xytext=(10, -14))
    ax.set(title="hand-set ReLU net: hidden space h", xlabel="h1", ylabel="h2",
           xlim=(-0.3, 2.5), ylim=(-0.3, 1.4))
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[2]
    endings = result["final_mse"]
    ax.bar(list(endings), list(endings.values()), color="tab:gray")
    ax.set(title=f"{result['settings']['seeds']} random starts, "
                 f"{result['settings']['steps']} GD steps", xlabel="final MSE",
           ylabel="starts")
    return save(fig, path)


def spiral(result, path):
    """Both decision maps over the spiral data, as the notes' scatter plot draws it."""
    X, y = datasets.spiral()
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    cmap = plt.cm.Spectral
    for ax, (name, run) in zip(axes, result.items()):
        classes = np.array(run["classes"])
        lim = np.linspace(-1, 1, classes.shape[0])
        ax.contourf(lim, lim, classes, levels=[-0.5, 0.5, 1.5, 2.5], alpha=0.35,
                    cmap=ListedColormap(cmap(np.linspace(0, 1, 3))))
        ax.scatter(*X.T, c=y, s=18, cmap=cmap, edgecolor="k", linewidth=0.3)
        ax.set(title=f"{name}: training accuracy {run['accuracy']:.0%}", xlim=(-1, 1),
               ylim=(-1, 1), aspect="equal")
    return save(fig, path)


def activations(result, gradients, path):
    """Activations, their derivatives, and the gradient per layer of two deep nets."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    z = result["z"]
    for name in ("sigmoid", "tanh", "relu"):
        axes[0].plot(z, result[name]["value"], label=name)
        axes[1].plot(z, result[name]["derivative"], label=name)
    axes[0].set(title="activation f(z)", xlabel="z")
    axes[1].set(title="derivative f'(z), from the saved output", xlabel="z")
    layers = np.arange(1, len(gradients["sizes"]))
    for name in gradients:
        if name != "sizes":
            axes[2].semilogy(layers, gradients[name], marker="o", label=name)
    axes[2].set(title=f"{'-'.join(map(str, gradients['sizes']))} at initialisation",
                xlabel="layer (1 = next to the input)", ylabel="RMS of dLoss/dW")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return save(fig, path)


def curves(runs, path):
    """Training and validation loss (top) and accuracy (bottom), one column per run."""
    fig, axes = plt.subplots(2, len(runs), figsize=(4 * len(runs), 6.5), sharey="row",
                             squeeze=False)
    for column, (name, run) in enumerate(runs.items()):
        c = run["curves"]
        for row, metric in enumerate(("loss", "accuracy")):
            ax = axes[row, column]
            ax.plot(c["epoch"], c[metric], color=TRAIN, lw=2, label="training")
            ax.plot(c["epoch"], c[f"val_{metric}"], color=VALIDATION, lw=2, label="validation")
            ax.set(title=f"{name}: {metric}", xlabel="epoch")
            ax.grid(True, alpha=0.3)
    axes[0, 0].legend()
    return save(fig, path)
