"""Static-graph optimizers (TensorFlow 1's `tf.train`): `minimize` builds one op that
updates every variable in a single Session run, with PyTorch's update formulas so that
static and eager training follow the same trajectory."""

from __future__ import annotations

import numpy as np

from graphjit.errors import GradientError
from graphjit.frontend import ops
from graphjit.frontend.gradients import gradients
from graphjit.frontend.graph import Variable, get_default_graph, group


class Optimizer:
    def __init__(self, learning_rate: float):
        self.learning_rate = learning_rate

    def minimize(self, loss, var_list=None):
        """An op that applies one update step to `var_list` (default: every trainable
        float variable of the graph that `loss` depends on)."""
        graph = get_default_graph()
        candidates = (
            var_list
            if var_list is not None
            else [v for v in graph.variables.values() if v.trainable and v.dtype.is_floating]
        )
        grads = gradients(loss, candidates)
        pairs = [(g, v) for g, v in zip(grads, candidates) if g is not None]
        if not pairs:
            raise GradientError("minimize: the loss depends on none of the variables")
        return self.apply_gradients(pairs)

    def apply_gradients(self, grads_and_vars):
        updates = []
        for grad, var in grads_and_vars:
            updates += self._update(grad, var)
        return group(*updates)

    def _slot(self, var: Variable, name: str) -> Variable:
        return Variable(
            np.zeros(var.shape, var.dtype.np), name=f"{var.name}/{name}", trainable=False
        )


class SGD(Optimizer):
    """p -= lr * g; with momentum: buf = momentum * buf + g; p -= lr * buf."""

    def __init__(self, learning_rate: float, momentum: float = 0.0):
        super().__init__(learning_rate)
        self.momentum = momentum

    def _update(self, grad, var):
        if not self.momentum:
            return [var.assign_sub(ops.mul(grad, self.learning_rate))]
        buf = self._slot(var, "momentum")
        new_buf = ops.add(ops.mul(buf, self.momentum), grad)
        return [buf.assign(new_buf), var.assign_sub(ops.mul(new_buf, self.learning_rate))]


GradientDescentOptimizer = SGD


class Adam(Optimizer):
    """Adam with bias correction, exactly as torch.optim.Adam computes it."""

    def __init__(self, learning_rate: float = 1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8):
        super().__init__(learning_rate)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self._steps: dict = {}

    def _update(self, grad, var):
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
        return [m.assign(new_m), v.assign(new_v), step.assign(t), var.assign_sub(delta)]

    def _step_counter(self, var: Variable) -> Variable:
        return Variable(np.zeros((), var.dtype.np), name=f"{var.name}/step", trainable=False)


AdamOptimizer = Adam
