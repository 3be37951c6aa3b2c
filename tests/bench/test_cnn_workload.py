"""The cnn_train_step workload (LeNet-5, one SGD step) on its tiny size through the harness:
every installed mode, gj.function included, computes NumPy's result; and NumPy's
hand-written backward pass, the reference of that check, matches graphjit's autodiff
tightly, since the check after one small SGD step would miss a small gradient error.

(The cells are those of the bench tests' shared tiny run: conftest.py.)"""

import numpy as np
import pytest

from graphjit.bench import MODES
from graphjit.bench.modes import FUNCTION_MODE
from graphjit.bench.workloads import cnn

CORE_MODES = {"gj-llvm", "gj-interp", "gj-eager", "numpy", FUNCTION_MODE.name}


@pytest.fixture(scope="module")
def cells(workload_cells) -> dict:
    return workload_cells(cnn.TRAIN_STEP.name)


def test_every_available_mode_computes_the_reference_result(cells):
    assert set(cells) == {mode.name for mode in MODES}
    for mode, cell in cells.items():
        if mode in CORE_MODES:
            assert cell.status == "ok", (mode, cell.reason)
        else:  # a peer: checked where installed, skipped (with the reason) where not
            assert cell.status in ("ok", "skipped"), (mode, cell.reason)
        if cell.status == "ok":
            assert cell.timing.repeats == 1 and cell.compile_s > 0


@pytest.mark.parametrize("size", ["tiny", "quick"])
def test_numpy_gradients_match_graphjit_autodiff(size):
    import graphjit as gj

    data = cnn.make_data(cnn.SIZES[size])
    loss, grads = cnn._np_loss_and_grads(data["params"], data["x"], data["labels"])
    params = [gj.tensor(p.astype(np.float64), requires_grad=True) for p in data["params"]]
    x64 = gj.tensor(data["x"].astype(np.float64))
    expected_loss = cnn.gj_loss(params, x64, gj.tensor(data["labels"]))
    expected_loss.backward()
    assert loss == pytest.approx(expected_loss.item(), rel=1e-5)
    for name, grad, param in zip(cnn.PARAMETER_NAMES, grads, params):
        scale = np.abs(param.grad.numpy()).max()
        np.testing.assert_allclose(grad, param.grad.numpy(), rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=name)  # fmt: skip


def test_sizes_flatten_to_the_first_dense_layer():
    assert cnn.flat_features(cnn.SIZES["full"]) == 16 * 5 * 5  # LeNet-5's 400 features
    for params in cnn.SIZES.values():
        assert cnn.flat_features(params) >= 1
