"""Whole training steps (``model.make_step(X, y, optimizer)()``) and the width/batch sweeps."""
GROUPS = ("step", "sweep-width", "sweep-batch")


def test_step(run_case, case, backend_name):
    run_case(case, backend_name)
