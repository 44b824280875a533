"""The seed's experiments (``harness.seed``) on tiny settings, and the words around them."""
import numpy as np
import pandas as pd
import pytest

from fastmlp import datasets
from fastmlp.harness import answer, plots, seed, seed_section


@pytest.fixture(scope="module")
def digits():
    """A small slice of the MNIST sample: 300 training and 100 test images."""
    (X, y), (T, t) = datasets.mnist_sample()
    return (X[:300], y[:300]), (T[:100], t[:100])


def test_xor_linear_fit_hand_net_and_random_starts():
    r = seed.xor("numpy", dict(seed.XOR, seeds=3, steps=50))
    np.testing.assert_allclose(r["linear_w"], [0, 0], atol=1e-12)  # the notes' w = 0, b = 0.5
    assert r["linear_b"] == pytest.approx(0.5) and r["linear_output"] == pytest.approx([0.5] * 4)
    assert r["hand_output"] == [0, 1, 1, 0]  # Goodfellow et al.'s solution, exactly
    assert r["hand_hidden"] == [[0, 0], [1, 0], [1, 0], [2, 1]]
    assert sum(r["final_mse"].values()) == 3 and 0 <= r["successes"] <= 3
    assert r["successes"] == r["final_mse"].get("0", 0)


def test_xor_is_learned_from_some_starts_and_not_from_others():
    r = seed.xor("numpy", dict(seed.XOR, seeds=10, steps=2000))
    assert 0 < r["successes"] < 10  # the point: a 2-unit ReLU net is often stuck
    assert "0.25" in r["final_mse"] or "0.167" in r["final_mse"]


def test_spiral_linear_against_relu_net():
    r = seed.spiral("numpy", dict(seed.SPIRAL, steps={"linear": 200, "2-100-3": 500}, grid=20))
    assert r["linear"]["accuracy"] < 0.6 < r["2-100-3"]["accuracy"]  # CS231n: 49% and 98%
    classes = np.array(r["2-100-3"]["classes"])
    assert classes.shape == (20, 20) and set(np.unique(classes)) <= {0, 1, 2}
    assert len(np.unique(r["2-100-3"]["classes"])) == 3


def test_activations_match_their_closed_forms():
    r = seed.activations("numpy", np.linspace(-4, 4, 9))
    z = np.array(r["z"])
    s = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(r["sigmoid"]["value"], s, rtol=1e-12)
    np.testing.assert_allclose(r["sigmoid"]["derivative"], s * (1 - s), rtol=1e-12)
    np.testing.assert_allclose(r["tanh"]["derivative"], 1 - np.tanh(z) ** 2, atol=1e-12)
    np.testing.assert_array_equal(r["relu"]["value"], np.maximum(z, 0))
    np.testing.assert_array_equal(r["relu"]["derivative"], (z > 0).astype(float))


def test_gradients_vanish_through_sigmoid_layers(digits):
    r = seed.gradients("numpy", digits, dict(seed.GRADIENTS, depth=5, width=16, batch=64))
    assert r["sizes"] == [784] + [16] * 5 + [10]
    assert len(r["sigmoid"]) == len(r["relu"]) == 6
    sigmoid, relu = r["sigmoid"][-1] / r["sigmoid"][0], r["relu"][-1] / r["relu"][0]
    assert sigmoid > 100 and sigmoid > 10 * relu


@pytest.mark.parametrize("variant", list(seed.OVERFIT["variants"]))
def test_overfit_runs_record_curves_and_test_figures(digits, variant):
    settings = dict(seed.OVERFIT, sizes=(784, 16, 10), epochs=2, batch_size=64)
    r = seed.overfit("numpy", digits, variant, settings)
    assert r["curves"]["epoch"] == [1, 2] and len(r["curves"]["val_loss"]) == 2
    assert r["steps"] == len(r["batch_losses"]) == 2 * 5  # 300 rows in batches of 64
    assert 0 <= r["near_zero"] <= 1 and 0 <= r["test_accuracy"] <= 1
    assert r["sizes"] == [784, 16, 10]
    penalised = variant in ("L1", "L2")  # evaluate's loss includes the penalty, as Keras's
    assert (r["test_loss"] > r["test_cross_entropy"] + 1e-6) == penalised
    if not penalised:
        assert r["test_loss"] == pytest.approx(r["test_cross_entropy"], rel=1e-4)


def test_l1_leaves_more_weights_near_zero(digits):
    settings = dict(seed.OVERFIT, sizes=(784, 16, 10), epochs=3, batch_size=64)
    plain = seed.overfit("numpy", digits, "plain", settings)
    l1 = seed.overfit("numpy", digits, "L1", dict(settings, variants={"L1": dict(l1=1e-3)}))
    assert l1["near_zero"] > 2 * plain["near_zero"]


@pytest.mark.parametrize("name", list(seed.KERAS))
def test_optimizer_comparison_run(digits, name):
    r = seed.optimizer("numpy", digits, name, dict(seed.OPTIMIZERS, sizes=(784, 8, 6, 10),
                                                   epochs=1, batch_size=100))
    assert len(r["batch_losses"]) == 3 and np.isfinite(r["batch_losses"]).all()
    assert r["test_loss"] > 0 and 0 <= r["test_accuracy"] <= 1


def test_digits_data_says_which_set_and_why(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no real MNIST in the usual caches
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FASTMLP_MNIST", str(tmp_path / "nowhere"))
    ((_, y), _), source, why = seed.digits_data()
    assert source == "sample" and why == "no MNIST files were found" and len(y) == 4000
    (tmp_path / "notes.txt").write_text("not digits")
    monkeypatch.setenv("FASTMLP_MNIST", str(tmp_path / "notes.txt"))
    _, source, why = seed.digits_data()
    assert source == "sample" and "found, but it is not MNIST" in why
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mnist.npz", **{f"x_{s}": rng.integers(0, 256, (n, 28, 28), np.uint8)
                                        for s, n in (("train", 20), ("test", 10))},
             **{f"y_{s}": rng.integers(0, 10, n) for s, n in (("train", 20), ("test", 10))})
    monkeypatch.setenv("FASTMLP_MNIST", str(tmp_path))
    ((X, _), _), source, why = seed.digits_data()
    assert source == "MNIST" and why == "" and X.shape == (20, 784)


def test_jobs_cover_the_five_experiments():
    keys = [key for key, _ in seed.jobs("numpy", quick_mode=True)]
    assert keys[:5] == ["data", "xor", "spiral", "activations", "gradients"]
    assert {k for k in keys if "/" in k} == {f"overfit/{v}" for v in seed.OVERFIT["variants"]} \
        | {f"optimizers/{n}" for n in seed.KERAS}


def test_section_shows_every_experiment_with_its_figures(tmp_path, digits):
    tiny = dict(seed.OVERFIT, sizes=(784, 8, 10), epochs=2, batch_size=100)
    results = {"data": dict(source="sample", why="no MNIST files were found", train=300,
                            test=100),
               "xor": seed.xor("numpy", dict(seed.XOR, seeds=2, steps=20)),
               "spiral": seed.spiral("numpy", dict(seed.SPIRAL, steps={"linear": 5,
                                                                       "2-100-3": 5}, grid=10)),
               "activations": seed.activations("numpy"),
               "gradients": seed.gradients("numpy", digits, dict(seed.GRADIENTS, depth=3,
                                                                 width=8, batch=32))}
    results |= {f"overfit/{v}": seed.overfit("numpy", digits, v, tiny)
                for v in seed.OVERFIT["variants"]}
    results |= {f"optimizers/{n}": seed.optimizer("numpy", digits, n, dict(
        seed.OPTIMIZERS, sizes=(784, 8, 10), epochs=1)) for n in seed.KERAS}
    text = seed_section.markdown(results, tmp_path, "numpy")
    for heading in ("## The seed, reproduced", "### 1. XOR", "### 2. Spiral", "### 3. Activ",
                    "### 4. Overfitting", "### 5. Optimizers", "**the MNIST sample**",
                    "notes: plain", "0.9747", "0.0722", "w = 0, b = 0.5"):
        assert heading in text
    figures = ["seed_xor.png", "seed_spiral.png", "seed_activations.png",
               "seed_overfitting.png", "seed_optimizers.png"]
    assert all(f"]({name})" in text and (tmp_path / name).stat().st_size > 1000
               for name in figures)


def curves(val_loss, val_accuracy):
    return {"curves": {"val_loss": val_loss, "val_accuracy": val_accuracy}}


def test_verdict_reads_the_curves():
    rising = seed_section._verdict({"plain": curves([0.3, 0.2, 0.25], [0.9, 0.93, 0.94]),
                                    "dropout 0.5": curves([0.3, 0.22, 0.21], [0.9, 0.92, 0.95])})
    assert "lowest at epoch 2 (0.2000) and rises again to 0.2500" in rising
    assert "ends lower, at 0.2100" in rising and "94.00% plain, 95.00% with dropout" in rising
    flat = seed_section._verdict({"plain": curves([0.3, 0.2], [0.9, 0.9]),
                                  "dropout 0.5": curves([0.3, 0.25], [0.9, 0.9])})
    assert "does not rise" in flat and "ends no lower" in flat


def test_fitted_exponent_recovers_a_power_law():
    x = np.array([1, 4, 16, 64, 256, 1024])
    seconds = 2e-8 + 1e-9 * x ** 1.5  # overhead at small x, then x^1.5
    assert plots.fitted_exponent(x, seconds) == pytest.approx(1.5, abs=0.05)
    assert plots.fitted_exponent(x, seconds, points=6) < 1.35  # the overhead bends the fit


def test_answer_tables_and_sentences_come_from_the_numbers(tmp_path):
    def row(key, backend, median):
        name = key.split("/")[1]
        return dict(key=key, group="step", name=name, dtype="float32", backend=backend,
                    status="ok", median_s=median, q1_s=median * 0.9, q3_s=median * 1.1)
    df = pd.DataFrame([row("step/xor/2-2-1 b4 adam/f32", "numpy", 100e-6),
                       row("step/xor/2-2-1 b4 adam/f32", "cython", 2e-6)])
    others = [dict(tool="PyTorch CPU", workload="xor 2-2-1 b4 f32", status="ok",
                   median_s=200e-6, q1_s=190e-6, q3_s=210e-6)]
    epochs = [dict(workload="xor", tool="fastmlp cython", status="ok", steps=1,
                   median_s=40e-6, q1_s=39e-6, q3_s=41e-6),
              dict(workload="xor", tool="fastmlp numpy", status="ok", steps=1,
                   median_s=200e-6, q1_s=190e-6, q3_s=210e-6),
              dict(workload="xor", tool="scikit-learn MLPClassifier", status="not installed",
                   steps=1)]
    summary = answer.frame(df, others, epochs, ["numpy", "cython"])
    assert list(summary.workload.unique()) == ["xor"]  # nothing measured elsewhere
    cython = summary[summary.tool == "cython"].iloc[0]
    assert cython.step_x == pytest.approx(50) and cython.epoch_x == pytest.approx(5)
    text = answer.markdown(summary, tmp_path)
    assert "XOR `cython` (2 µs, 50x numpy)" in text
    assert "`cython` is 100x faster than PyTorch CPU" in text
    assert "an epoch of `cython`'s `fit` takes 20x its single step" in text
    assert "| scikit-learn | n/a | - | not installed | - |" in text
    assert (tmp_path / "summary.png").stat().st_size > 1000


def test_section_says_which_digits_it_trained_on():
    full = seed_section._data_md(dict(source="MNIST", why="", train=60000, test=10000), {})
    assert "the full MNIST found by `datasets.mnist()` (60,000 training and 10,000 test" in full
    sample = seed_section._data_md(dict(source="sample", why="x.gz: found, but it is not MNIST",
                                        train=4000, test=1000), {"plain": {"steps": 320}})
    assert "**the MNIST sample**" in sample and "x.gz: found, but it is not MNIST" in sample
    assert "15x fewer training images" in sample and "320 steps here instead of 4,700" in sample
