"""graphjit quickstart: one model, built as a static graph and run in a Session."""

import numpy as np

import graphjit as gj

rng = np.random.default_rng(0)
data = rng.normal(size=(64, 3)).astype(np.float32)
target = data @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.25

g = gj.Graph()
with g.as_default():
    x = gj.placeholder(gj.float32, shape=[None, 3], name="x")
    y = gj.placeholder(gj.float32, shape=[None, 1], name="y")
    w = gj.Variable(np.zeros((3, 1), np.float32), name="w")
    b = gj.Variable(np.zeros((1,), np.float32), name="b")
    loss = gj.mean(gj.square(x @ w + b - y))
    # a data-dependent loop and a branch, compiled into the same graph
    steps, halved = gj.while_loop(
        lambda i, v: gj.sum(v) > 1.0, lambda i, v: (i + 1, v * 0.5), [gj.constant(0), gj.abs(x)]
    )
    sign = gj.cond(gj.sum(x) > 0, lambda: gj.constant(1.0), lambda: gj.constant(-1.0))

print(g.as_text()[:600], "...\n")
with gj.Session(g) as sess:  # the LLVM backend: one native call per run
    loss_v, steps_v, sign_v = sess.run([loss, steps, sign], feed_dict={x: data, y: target})
    print(f"initial loss {loss_v:.4f}; the loop halved |x| {steps_v} times; sign {sign_v}")
