"""The tape and Python's cycle collector: how many objects the collector must track for
each recorded op while the tape lives. Each one makes every later collection longer, and a
long tape of them triggers full collections of the whole heap (issue 18: with seven per op,
recording cost 2-4x more on a 20000-op tape than on a short one). A count, not a timing:
the same on every machine."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import graphjit as gj

# Tracked objects a recorded op leaves alive: its node. (Its saved arrays, version cells and
# the tuples holding them are not tracked once the collector has passed over them.)
TRACKED_PER_OP = 1
OPS = 1000

W = gj.tensor(np.eye(4, dtype=np.float32), requires_grad=True)
B = gj.tensor(np.zeros(4, np.float32), requires_grad=True)
DATA = gj.tensor(np.full((4, 4), 0.5, np.float32))

# one recorded op each
STEPS = {
    "tensor * python scalar": lambda y: y * 1.0001,
    "matmul with a weight": lambda y: y @ W,
    "add a bias": lambda y: y + B,
    "with a tensor outside autograd": lambda y: y * DATA,
    "unary": lambda y: y.tanh(),
    "relu": gj.relu,
}


def tracked_per_op(step) -> float:
    y = step(gj.tensor(np.ones((4, 4), np.float32), requires_grad=True))
    y = step(y)  # (caches warm)
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(OPS):
        y = step(y)
    gc.collect()  # (what is garbage goes; tuples of untracked objects are untracked)
    per_op = (len(gc.get_objects()) - before) / OPS
    y.sum().backward()  # (the tape still works)
    return per_op


@pytest.mark.parametrize("name", STEPS)
def test_a_recorded_op_leaves_one_tracked_object(name):
    per_op = tracked_per_op(STEPS[name])
    assert per_op <= TRACKED_PER_OP + 0.01, (
        f"{name}: each recorded op leaves {per_op:.2f} objects the cycle collector tracks "
        f"alive (expected {TRACKED_PER_OP}: the node). Keep what a node saves in tuples of "
        "arrays and numbers, and the nodes its edges lead to in its own slots, not in a "
        "tuple or list of their own (see graphjit/frontend/eager/node.py)"
    )


def test_the_tape_keeps_no_tensor_alive():
    """Nodes save arrays and version cells, not tensors: an intermediate result the user
    dropped is freed at once, though backward will read its value."""
    x = gj.tensor(np.ones(3, np.float32), requires_grad=True)
    y = x * 2
    z = y.exp()
    gc.collect()
    count = sum(type(o) is gj.Tensor for o in gc.get_objects())
    del y
    assert sum(type(o) is gj.Tensor for o in gc.get_objects()) == count - 1
    z.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp(2.0) * np.ones(3), rtol=1e-6)
