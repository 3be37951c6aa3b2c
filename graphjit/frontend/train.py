"""Static-graph optimizers (TensorFlow 1's `tf.train`): `minimize` builds one op that
updates every variable in a single Session run, with PyTorch's update formulas so that
static and eager training follow the same trajectory. Also TF1's global step and `Saver`."""

from __future__ import annotations

import numpy as np

from graphjit.errors import CheckpointError, GradientError, GraphjitError
from graphjit.frontend import ops
from graphjit.frontend.gradients import gradients
from graphjit.frontend.graph import Variable, get_default_graph, group
from graphjit.ir.core import user_location
from graphjit.runtime import checkpoint

__all__ = [
    "Adam", "AdamOptimizer", "AdamW", "GradientDescentOptimizer", "MomentumOptimizer", "Optimizer",
    "SGD", "Saver", "create_global_step", "get_global_step", "get_or_create_global_step",
]  # fmt: skip

GLOBAL_STEP = "global_step"  # the name TF1 gives the global step variable


class Optimizer:
    def __init__(self, learning_rate: float):
        self.learning_rate = learning_rate

    def minimize(self, loss, global_step=None, var_list=None):
        """An op that applies one update step to `var_list` (default: every trainable
        float variable of the graph that `loss` depends on) and adds 1 to `global_step`
        when one is given (TF1's argument order)."""
        if isinstance(global_step, (list, tuple)):
            raise GraphjitError(
                "minimize's second argument is global_step, as in TF1: pass the variables as "
                "var_list=[...]",
                location=user_location(),
            )
        pairs = [(g, v) for g, v in self.compute_gradients(loss, var_list) if g is not None]
        if not pairs:
            raise GradientError(
                "minimize: the loss depends on none of the variables", location=user_location()
            )
        return self.apply_gradients(pairs, global_step=global_step)

    def compute_gradients(self, loss, var_list=None) -> list:
        """[(gradient, variable)] for `var_list` (default: every trainable float variable of
        the graph); the gradient is None where `loss` does not depend on the variable."""
        if var_list is None:
            graph = get_default_graph()
            var_list = [v for v in graph.variables.values() if v.trainable and v.dtype.is_floating]
        var_list = list(var_list)
        return list(zip(gradients(loss, var_list), var_list))

    def apply_gradients(self, grads_and_vars, global_step=None):
        """One op that updates each variable from its gradient (pairs whose gradient is None
        are skipped) and adds 1 to `global_step` when one is given."""
        updates = []
        for grad, var in grads_and_vars:
            if grad is not None:
                updates += self._update(grad, var)
        if not updates:
            raise GradientError(
                "apply_gradients: no gradients given for any variable", location=user_location()
            )
        if global_step is not None:
            # every read in a run sees the value from the run's start: one step adds one
            updates.append(global_step.assign_add(1))
        return group(*updates)

    def _slot(self, var: Variable, name: str) -> Variable:
        return Variable(
            np.zeros(var.shape, var.dtype.np), name=f"{var.name}/{name}", trainable=False
        )


class SGD(Optimizer):
    """p -= lr * g; with momentum: buf = momentum * buf + g; p -= lr * buf, or with
    `nesterov` p -= lr * (g + momentum * buf) (PyTorch's and TF1's formulas agree)."""

    def __init__(self, learning_rate: float, momentum: float = 0.0, nesterov: bool = False):
        super().__init__(learning_rate)
        self.momentum = momentum
        self.nesterov = nesterov

    def _update(self, grad, var):
        if not self.momentum:
            return [var.assign_sub(ops.mul(grad, self.learning_rate))]
        buf = self._slot(var, "momentum")
        new_buf = ops.add(ops.mul(buf, self.momentum), grad)
        step = ops.add(grad, ops.mul(new_buf, self.momentum)) if self.nesterov else new_buf
        return [buf.assign(new_buf), var.assign_sub(ops.mul(step, self.learning_rate))]


class GradientDescentOptimizer(SGD):
    """TF1's tf.train.GradientDescentOptimizer(learning_rate): p -= lr * g."""

    def __init__(self, learning_rate: float):
        super().__init__(learning_rate)


class MomentumOptimizer(SGD):
    """TF1's tf.train.MomentumOptimizer: accumulation = momentum * accumulation + g;
    p -= lr * accumulation (with `use_nesterov`, p -= lr * (g + momentum * accumulation))."""

    def __init__(self, learning_rate: float, momentum: float, use_nesterov: bool = False):
        super().__init__(learning_rate, momentum, nesterov=use_nesterov)


class Adam(Optimizer):
    """Adam with bias correction, exactly as torch.optim.Adam computes it."""

    def __init__(self, learning_rate: float = 1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8):
        super().__init__(learning_rate)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self._steps: dict = {}

    def _update(self, grad, var):
        slot_updates, delta = self._moments_and_delta(grad, var)
        return [*slot_updates, var.assign_sub(delta)]

    def _moments_and_delta(self, grad, var):
        """The assigns of the step count and moments, and the step to subtract from var."""
        step = self._step_counter(var)
        t = ops.add(step, 1.0)
        m, v = self._slot(var, "m"), self._slot(var, "v")
        new_m = ops.add(ops.mul(m, self.beta1), ops.mul(grad, 1 - self.beta1))
        new_v = ops.add(ops.mul(v, self.beta2), ops.mul(ops.square(grad), 1 - self.beta2))
        # beta ** t with beta made directly in the variable's dtype: a Python float alone
        # becomes a float32 constant (TF1's rule), and 1 - 0.999f would be off by 1e-5
        beta1, beta2 = (np.asarray(b, var.dtype.np) for b in (self.beta1, self.beta2))
        m_hat = ops.div(new_m, ops.sub(1.0, ops.pow(beta1, t)))
        v_hat = ops.div(new_v, ops.sub(1.0, ops.pow(beta2, t)))
        delta = ops.div(ops.mul(m_hat, self.learning_rate), ops.add(ops.sqrt(v_hat), self.epsilon))
        return [m.assign(new_m), v.assign(new_v), step.assign(t)], delta

    def _step_counter(self, var: Variable) -> Variable:
        return Variable(np.zeros((), var.dtype.np), name=f"{var.name}/step", trainable=False)


class AdamW(Adam):
    """Adam with decoupled weight decay, exactly as torch.optim.AdamW computes it: the
    variable is first scaled by 1 - learning_rate * weight_decay, then Adam's step is
    subtracted. `learning_rate` may be a graph value (a fed schedule)."""

    def __init__(self, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, weight_decay=0.01):
        super().__init__(learning_rate, beta1, beta2, epsilon)
        self.weight_decay = weight_decay

    def _update(self, grad, var):
        slot_updates, delta = self._moments_and_delta(grad, var)
        rate = self.learning_rate
        if isinstance(rate, (int, float)):  # in var's dtype: a lone Python float is float32
            decay = np.asarray(1.0 - rate * self.weight_decay, var.dtype.np)
        else:
            decay = ops.sub(1.0, ops.mul(ops.cast(rate, var.dtype), self.weight_decay))
        return [*slot_updates, var.assign(ops.sub(ops.mul(var, decay), delta))]


class AdamOptimizer(Adam):
    """TF1's tf.train.AdamOptimizer, with its argument names and defaults. Its update is
    PyTorch's (epsilon added to sqrt of the bias-corrected second moment); TF1 adds epsilon
    before that correction, which differs only while sqrt(v) is comparable to epsilon."""

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-08):
        super().__init__(learning_rate, beta1, beta2, epsilon)


# ---- the global step -----------------------------------------------------------------------


def get_global_step(graph=None):
    """The graph's global step variable (named "global_step"), or None."""
    graph = graph if graph is not None else get_default_graph()
    return graph.variables.get(GLOBAL_STEP)


def create_global_step(graph=None):
    """A new int64 global step variable, 0, not trainable; an error if the graph has one."""
    graph = graph if graph is not None else get_default_graph()
    if GLOBAL_STEP in graph.variables:
        raise GraphjitError("this graph already has a global step", location=user_location())
    with graph.as_default():
        return Variable(np.int64(0), name=GLOBAL_STEP, trainable=False)


def get_or_create_global_step(graph=None):
    """The graph's global step variable, created (int64, 0) if it has none."""
    step = get_global_step(graph)
    return step if step is not None else create_global_step(graph)


# ---- Saver ---------------------------------------------------------------------------------


class Saver:
    """TF1's tf.train.Saver on graphjit's checkpoint format (a `.npz`, format 2, with a
    SHA-256 per variable, written atomically; see Session.save). `var_list`: the variables
    to save and restore (a list, or a dict from checkpoint name to variable); default all."""

    def __init__(self, var_list=None):
        if isinstance(var_list, dict):
            self._names = {key: v.name for key, v in var_list.items()}
        elif var_list is not None:
            self._names = {v.name: v.name for v in var_list}
        else:
            self._names = None

    def save(self, sess, save_path, global_step=None) -> str:
        """Write the variables' values in `sess` to `save_path` (with "-<step>" appended when
        `global_step`, a number or a variable, is given); returns the path written."""
        if global_step is not None:
            step = global_step if isinstance(global_step, int) else sess.run(global_step)
            save_path = f"{save_path}-{int(step)}"
        if self._names is None:
            return sess.save(save_path)
        values = self._values(sess)
        return checkpoint.save(save_path, {key: values[name] for key, name in self._names.items()})

    def restore(self, sess, save_path) -> None:
        """Set the variables in `sess` from a checkpoint; each is checked for dtype, shape
        and checksum before it is used."""
        if self._names is None:
            sess.restore(save_path)
            return
        graph_vars = sess.graph.variables
        expected = {
            key: (graph_vars[name].shape, graph_vars[name].dtype.np)
            for key, name in self._names.items()
        }
        loaded = checkpoint.load(save_path, expected)
        for key, name in self._names.items():
            sess.load_variable(name, loaded[key])

    def _values(self, sess) -> dict:
        """The session's values of this saver's variables, by variable name."""
        names = list(self._names.values())
        missing = [n for n in names if n not in sess.graph.variables]
        if missing:
            raise CheckpointError(f"Saver: the session's graph has no variables {missing}")
        return dict(zip(names, sess.run([sess.graph.variables[n] for n in names])))
