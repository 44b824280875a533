"""Optimizers against their published update rules (the torch.optim documentation's
algorithms, written out again here step by step), on every backend."""
import math

import numpy as np
import pytest

from fastmlp import optim


def sgd_rule(lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    def update(theta, g, state, t):
        g = g + weight_decay * theta
        if momentum:
            b = g if t == 1 else momentum * state["b"] + (1 - dampening) * g
            state["b"] = b
            g = g + momentum * b if nesterov else b
        return theta - lr * g
    return update


def rmsprop_rule(lr=0.01, alpha=0.99, eps=1e-8, momentum=0.0, centered=False, weight_decay=0.0):
    def update(theta, g, state, t):
        g = g + weight_decay * theta
        v = state["v"] = alpha * state.get("v", 0) + (1 - alpha) * g * g
        if centered:
            state["g_ave"] = alpha * state.get("g_ave", 0) + (1 - alpha) * g
            v = v - state["g_ave"] ** 2
        if momentum > 0:
            state["b"] = momentum * state.get("b", 0) + g / (np.sqrt(v) + eps)
            return theta - lr * state["b"]
        return theta - lr * g / (np.sqrt(v) + eps)
    return update


def adam_rule(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
    beta1, beta2 = betas

    def update(theta, g, state, t):
        g = g + weight_decay * theta
        m = state["m"] = beta1 * state.get("m", 0) + (1 - beta1) * g
        v = state["v"] = beta2 * state.get("v", 0) + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** t)
        if amsgrad:
            v = state["v_max"] = np.maximum(state.get("v_max", 0), v)
        v_hat = v / (1 - beta2 ** t)
        return theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    return update


def adagrad_rule(lr=0.01, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10):
    def update(theta, g, state, t):
        clr = lr / (1 + (t - 1) * lr_decay)
        g = g + weight_decay * theta
        state["sum"] = state.get("sum", initial_accumulator_value) + g * g
        return theta - clr * g / (np.sqrt(state["sum"]) + eps)
    return update


CASES = [
    (optim.SGD, sgd_rule, dict(lr=0.1)),
    (optim.SGD, sgd_rule, dict(lr=0.05, momentum=0.9, dampening=0.2, weight_decay=0.01)),
    (optim.SGD, sgd_rule, dict(lr=0.05, momentum=0.9, nesterov=True)),
    (optim.RMSprop, rmsprop_rule, dict()),
    (optim.RMSprop, rmsprop_rule, dict(lr=1e-3, alpha=0.9, centered=True, momentum=0.5,
                                       weight_decay=0.01)),
    (optim.Adam, adam_rule, dict()),
    (optim.Adam, adam_rule, dict(lr=1e-2, betas=(0.8, 0.99), amsgrad=True, weight_decay=0.1)),
    (optim.Adagrad, adagrad_rule, dict()),
    (optim.Adagrad, adagrad_rule, dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1,
                                       weight_decay=0.01)),
]


@pytest.mark.parametrize("cls, rule, settings", CASES,
                         ids=[f"{c.__name__}-{'-'.join(s) or 'defaults'}" for c, _, s in CASES])
def test_update_follows_published_rule(backend, cls, rule, settings):
    rng = np.random.default_rng(0)
    params = [rng.normal(size=(3, 4)), rng.normal(size=4)]
    expected = [p.copy() for p in params]
    states = [{}, {}]
    optimizer, update = cls(**settings), rule(**settings)
    for t in range(1, 51):
        grads = [rng.normal(size=p.shape) for p in params]
        optimizer.step(params, grads, backend=backend.name)
        expected = [update(e, g, s, t) for e, g, s in zip(expected, grads, states)]
        for got, want in zip(params, expected):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=f"step {t}")


def test_defaults_are_torchs():
    assert (optim.RMSprop().lr, optim.RMSprop().alpha, optim.RMSprop().eps) == (0.01, 0.99, 1e-8)
    assert (optim.Adam().lr, optim.Adam().betas, optim.Adam().eps) == (1e-3, (0.9, 0.999), 1e-8)
    assert (optim.Adagrad().lr, optim.Adagrad().eps) == (0.01, 1e-10)


def test_float32_parameters_stay_float32():
    param, grad = np.ones(5, np.float32), np.full(5, 0.5, np.float32)
    optim.Adam(lr=0.1).step([param], [grad])
    assert param.dtype == np.float32
    assert param == pytest.approx(1 - 0.1 * 0.05 / 0.1 / (math.sqrt(0.00025 / 0.001) + 1e-8))


@pytest.mark.parametrize("make, message", [
    (lambda: optim.SGD(lr=0), "lr must be in"),
    (lambda: optim.Adam(lr=-1e-3), "lr must be in"),
    (lambda: optim.SGD(lr=0.1, nesterov=True), "nesterov=True requires momentum > 0"),
    (lambda: optim.Adam(betas=(0.9, 1.0)), r"betas\[1\] must be in"),
    (lambda: optim.RMSprop(alpha=1.5), "alpha must be in"),
    (lambda: optim.Adagrad(eps=-1), "eps must be in"),
    (lambda: optim.SGD(lr="fast"), "lr must be a number"),
    (lambda: optim.get("adamw"), "optimizer must be one of"),
])
def test_bad_settings_are_refused(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_get_builds_by_name():
    assert isinstance(optim.get("adam", lr=0.1), optim.Adam)
    assert optim.get("SGD").lr == 0.01
    opt = optim.RMSprop()
    assert optim.get(opt) is opt


def test_step_refuses_mismatched_or_changed_parameters():
    opt = optim.Adam()
    with pytest.raises(ValueError, match="must align"):
        opt.step([np.zeros(3)], [])
    with pytest.raises(ValueError, match=r"grads\[0\] has shape \(4,\)"):
        opt.step([np.zeros(3)], [np.zeros(4)])
    with pytest.raises(ValueError, match="C-contiguous"):
        opt.step([np.zeros((3, 4))[:, ::2]], [np.zeros((3, 2))])
    opt.step([np.zeros(3)], [np.ones(3)])
    with pytest.raises(ValueError, match="parameter 0 changed"):
        opt.step([np.zeros(5)], [np.ones(5)])


def test_a_subclass_with_its_own_update_keeps_it_in_the_model(backend):
    """Only the contract's update kernels are fused into the training step: an optimizer
    that overrides _update is run by it, after the network kernel."""
    from fastmlp import MLP, datasets

    class SignSGD(optim.SGD):
        def _update(self, kernels, param, grad, state, t):
            param -= self.lr * np.sign(grad)

    X, y = datasets.spiral(n_per_class=4)
    model = MLP([2, 4, 3], backend=backend.name, dtype="float64", seed=0)
    before = model._theta.copy()
    _, grads = model.loss_and_grads(X, y)
    model.make_step(X, y, SignSGD(lr=0.01))()
    np.testing.assert_allclose(model._theta, before - 0.01 * np.sign(np.concatenate(
        [g.ravel() for g in grads])), rtol=1e-12)


@pytest.mark.parametrize("steps", [None, 1, 5, 100])
def test_a_scalar_table_holds_each_steps_scalars_across_its_recomputes(steps):
    # rows(m) is the next m steps' update scalars; count(m) moves on. A table sized to a fit
    # (steps, at least SHORTEST) is recomputed when it runs out, and every row stays the rule's.
    opt, theta = optim.Adam(lr=0.01), np.zeros(4)
    table = opt.scalar_table("theta", theta, steps)
    assert table.block == (table.BLOCK if steps is None else max(table.SHORTEST, steps))
    start = 1
    for m in (3, 1, 4, 2, 60, 70):  # 140 steps: past a block of 64 and one of 100
        expected = np.array([[float(v) for v in opt._scalars(t)] for t in range(start, start + m)])
        # rtol: NumPy's vectorised power differs from a float's in the last bits
        np.testing.assert_allclose(table.rows(m), expected, rtol=1e-13)
        table.count(m)
        start += m


def test_fused_step_args_give_each_steps_scalars_and_follow_a_changed_setting():
    """make_step's per-step arguments: the rule's scalars at every step, past the end of a
    table (STEP_BLOCK steps), counting each step; a setting changed between steps (a user's
    lr schedule) is in force from the next step."""
    opt, theta = optim.Adam(lr=0.01), np.zeros(4)
    next_args = opt.fused_step_args("theta", theta)
    for t in range(1, optim.ScalarTable.STEP_BLOCK + 10):
        code, state, scalars = next_args()
        if t % 97 == 1 or t > optim.ScalarTable.STEP_BLOCK - 2:
            np.testing.assert_allclose(scalars, [float(v) for v in opt._scalars(t)], rtol=1e-13)
    assert code == opt.code and state is opt._state["theta"][0] and opt._state["theta"][1] == t
    opt.lr = 0.5
    scalars = next_args()[2]
    np.testing.assert_allclose(scalars, [float(v) for v in opt._scalars(t + 1)], rtol=1e-13)
    assert scalars[0] == pytest.approx(0.5 / (1 - 0.9 ** (t + 1)), rel=1e-13)
    opt.betas = (0.5, 0.99)
    np.testing.assert_allclose(next_args()[2], [float(v) for v in opt._scalars(t + 2)],
                               rtol=1e-13)


def test_a_changed_lr_changes_the_next_make_step():
    """make_step reads the optimizer's settings at every step, not when it was made: of two
    models stepped alike three times, the one whose lr goes from 0.01 to 0.1 moves ten times
    as far on the fourth step (Adam's step is linear in lr)."""
    from fastmlp import MLP, datasets

    X, y = datasets.spiral(n_per_class=4)
    models = [MLP([2, 8, 3], dtype="float64", seed=0) for _ in range(2)]
    opts = [optim.Adam(lr=0.01), optim.Adam(lr=0.01)]
    steps = [m.make_step(X, y, o) for m, o in zip(models, opts)]
    for _ in range(3):
        [step() for step in steps]
    before = models[0]._theta.copy()
    np.testing.assert_array_equal(models[1]._theta, before)
    opts[0].lr = 0.1
    [step() for step in steps]
    np.testing.assert_allclose(models[0]._theta - before, 10 * (models[1]._theta - before),
                               rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.99), (0.0, 0.9999)])
def test_adams_bias_corrections_are_the_published_ones_at_any_step(betas):
    """lr / (1 - beta1**t) and sqrt(1 - beta2**t), exactly, from the first step to long past
    the one where the powers underflow (where the computation stops raising them)."""
    opt = optim.Adam(lr=0.01, betas=betas)
    t = np.concatenate([np.arange(1, 50_000), [10**6, 10**9]]).astype(np.int64)
    beta1, beta2 = betas
    table = opt._table_scalars(t)
    step_size, root = table[0], table[4]
    np.testing.assert_array_equal(step_size, 0.01 / (1 - beta1 ** t.astype(float)))
    np.testing.assert_array_equal(root, np.sqrt(1 - beta2 ** t.astype(float)))
    for one in (1, 7, 4_000, 10**6):  # a step's scalars, in Python floats
        assert opt._scalars(one)[0] == 0.01 / (1 - beta1 ** one)
        assert opt._scalars(one)[4] == math.sqrt(1 - beta2 ** one)
