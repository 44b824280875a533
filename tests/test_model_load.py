"""MLP.load of a file that MLP.save did not write (another tool or version): a clear error."""
import json

import numpy as np
import pytest

from fastmlp import MLP


def saved_arrays(tmp_path):
    MLP([3, 4, 2], seed=1).save(tmp_path / "model.npz")
    with np.load(tmp_path / "model.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("field", ["backend", "activation", "dtype", "seed"])
def test_a_missing_setting_names_the_file_and_the_field(tmp_path, field):
    arrays = saved_arrays(tmp_path)
    config = json.loads(str(arrays["config"]))
    del config[field]
    file = tmp_path / "other.npz"
    np.savez(file, **dict(arrays, config=np.array(json.dumps(config))))
    with pytest.raises(ValueError, match=f"{file}: not a model written by MLP.save .*"
                                         f"missing config\\['{field}'\\]$"):
        MLP.load(file)


def test_missing_arrays_are_named(tmp_path):
    arrays = saved_arrays(tmp_path)
    file = tmp_path / "weights_only.npz"
    np.savez(file, theta=arrays["theta"])
    with pytest.raises(ValueError, match=f"{file}: .*missing sizes, config$"):
        MLP.load(file)


def test_a_complete_file_still_loads(tmp_path):
    saved_arrays(tmp_path)
    model = MLP.load(tmp_path / "model.npz")
    np.testing.assert_array_equal(model.params[0], MLP([3, 4, 2], seed=1).params[0])
