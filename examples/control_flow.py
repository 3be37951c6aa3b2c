"""Data-dependent control flow, written four ways, all agreeing:

    def forward(x, n):
        for i in range(n):
            x = x * 2 if sum(x) > 0 else x + 1
        return x

1. Python on eager tensors (the branch is a Python `if` on a tensor's value);
2. a static graph: gj.while_loop around gj.cond, n a placeholder, and its gradient;
3. gj.function over the same Python code with gj.cond: the loop over a constant n unrolls;
4. gj.function with gj.while_loop: one trace serves every n.
A Python `if` on a traced value is refused, with the line that did it.
Run: python examples/control_flow.py"""

import numpy as np

import graphjit as gj


def forward_eager(x, n: int):
    for _ in range(n):
        x = x * 2 if gj.sum(x) > 0 else x + 1
    return x


def forward_cond(x, n: int):
    for _ in range(n):
        x = gj.cond(gj.sum(x) > 0, lambda x=x: x * 2, lambda x=x: x + 1)
    return x


def forward_loop(x, n):
    def body(i, x):
        return i + 1, gj.cond(gj.sum(x) > 0, lambda: x * 2, lambda: x + 1)

    return gj.while_loop(lambda i, x: i < n, body, [0, x])[1]


cases = [(np.array([1.0, 2.0]), 3), (np.array([-3.0, 0.5]), 4), (np.array([-5.0, -1.0]), 2)]

# 1. eager, with a tape: d sum(forward(x)) / dx
eager = []
for start, n in cases:
    x = gj.tensor(start, requires_grad=True)
    out = forward_eager(x, n)
    gj.sum(out).backward()
    eager.append((out.numpy(), x.grad.numpy()))
    print(f"eager        forward({start.tolist()}, {n}) = {out.tolist()}, grad {x.grad.tolist()}")

# 2. a static graph: the loop and the branch are ops; gradients go through both
g = gj.Graph()
with g.as_default():
    x = gj.placeholder(gj.float64, [None], name="x")
    n = gj.placeholder(gj.int32, [], name="n")
    out = forward_loop(x, n)
    (dx,) = gj.gradients(gj.sum(out), [x])
with gj.Session(g) as sess:
    for (start, k), (want, want_grad) in zip(cases, eager):
        got, got_grad = sess.run([out, dx], {x: start, n: k})
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got_grad, want_grad)
print("static graph: while_loop + cond, values and gradients equal eager")

# 3. and 4. gj.function
unrolled, looped = gj.function(forward_cond), gj.function(forward_loop)
for (start, k), (want, _) in zip(cases, eager):
    np.testing.assert_array_equal(unrolled(start, k), want)  # k a Python int: a constant
    np.testing.assert_array_equal(looped(start, np.int32(k)), want)  # k a tensor
print(f"gj.function: unrolled Python loop traced {unrolled.trace_count} times (once per n), "
      f"while_loop traced {looped.trace_count} time")  # fmt: skip
assert unrolled.trace_count == 3 and looped.trace_count == 1

# The eager code as it is cannot be traced: `if` needs a value the graph does not have yet.
try:
    gj.function(forward_eager)(np.ones(2), 1)
except gj.GraphjitError as error:
    message = str(error)
    print("tracing forward_eager fails:\n ", message.replace("\n", "\n  "))
    assert "x = x * 2 if gj.sum(x) > 0 else x + 1" in message and "gj.cond" in message
else:
    raise AssertionError("a Python `if` on a traced value must fail")
