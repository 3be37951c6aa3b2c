"""The transformer_train_step workload (2 layers, one AdamW step) on its tiny size through
the harness: every installed mode, gj.function included, computes NumPy's result; and
NumPy's hand-written backward pass, the reference of that check, matches graphjit's
autodiff in float64 (to 1e-5: its constants are float32) (the check after one Adam step sees mostly gradient signs).

(The cells are those of the bench tests' shared tiny run: conftest.py.)"""

import numpy as np
import pytest

from graphjit.bench import MODES
from graphjit.bench.modes import FUNCTION_MODE
from graphjit.bench.workloads import transformer

CORE_MODES = {"gj-llvm", "gj-interp", "gj-eager", "numpy", FUNCTION_MODE.name}


@pytest.fixture(scope="module")
def cells(workload_cells) -> dict:
    return workload_cells(transformer.TRAIN_STEP.name)


def test_every_available_mode_computes_the_reference_result(cells):
    assert set(cells) == {mode.name for mode in MODES}
    for mode, cell in cells.items():
        if mode in CORE_MODES:
            assert cell.status == "ok", (mode, cell.reason)
        else:  # a peer: checked where installed, skipped (with the reason) where not
            assert cell.status in ("ok", "skipped"), (mode, cell.reason)
        if cell.status == "ok":
            assert cell.timing.repeats == 1 and cell.compile_s > 0


def test_numpy_gradients_match_graphjit_autodiff():
    import graphjit as gj

    data = transformer.make_data(transformer.SIZES["tiny"])
    data64 = {**data, "params": [p.astype(np.float64) for p in data["params"]]}
    params = dict(zip(data["names"], data64["params"]))
    loss, grads = transformer._np_loss_and_grads(
        params, data["tokens"], data["targets"], data["heads"], data["layers"]
    )
    model = transformer._gj_model(data64)
    expected = model(gj.tensor(data["tokens"]), gj.tensor(data["targets"]))
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=1e-10)
    for name, param in model.named_parameters():
        want = param.grad.numpy()
        np.testing.assert_allclose(grads[name], want, rtol=1e-5,
                                   atol=1e-8 * np.abs(want).max(), err_msg=name)  # fmt: skip
