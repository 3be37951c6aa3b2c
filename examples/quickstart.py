"""graphjit quickstart: one model three ways, side by side.

1. static: build a graph (placeholders, Variables, ops, a loop and a branch), run it in a
   Session (compiled to native code by the LLVM backend);
2. eager: the same ops on gj.tensor, at once, with a tape and .backward() (PyTorch style);
3. gj.function: write eager-style Python, get it traced into a graph and compiled.

Run: python examples/quickstart.py  (or: graphjit quickstart)
"""

import numpy as np

import graphjit as gj

rng = np.random.default_rng(0)
data = rng.normal(size=(64, 3)).astype(np.float32)
target = data @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.25

# ---- 1. static graph: define, then run ---------------------------------------------------
g = gj.Graph()
with g.as_default():
    x = gj.placeholder(gj.float32, shape=[None, 3], name="x")
    y = gj.placeholder(gj.float32, shape=[None, 1], name="y")
    w = gj.Variable(np.zeros((3, 1), np.float32), name="w")
    b = gj.Variable(np.zeros((1,), np.float32), name="b")
    loss = gj.mean(gj.square(x @ w + b - y))
    train = gj.train.SGD(learning_rate=0.1).minimize(loss)
    # a data-dependent loop and a branch, compiled into the same graph
    steps, halved = gj.while_loop(
        lambda i, v: gj.sum(v) > 1.0, lambda i, v: (i + 1, v * 0.5), [gj.constant(0), gj.abs(x)]
    )
    sign = gj.cond(gj.sum(x) > 0, lambda: gj.constant(1.0), lambda: gj.constant(-1.0))

print(g.as_text()[:400], "...\n")
with gj.Session(g) as sess:  # the LLVM backend: one native call per run
    feed = {x: data, y: target}
    loss_v, steps_v, sign_v = sess.run([loss, steps, sign], feed_dict=feed)
    print(f"static: initial loss {loss_v:.4f}; the loop halved |x| {steps_v} times; sign {sign_v}")
    for _ in range(50):
        sess.run(train, feed_dict=feed)
    static_loss, static_w = sess.run([loss, w], feed_dict=feed)
print(f"static: loss after 50 SGD steps {static_loss:.6f}")

# ---- 2. eager: run now, differentiate the tape -------------------------------------------
w_e = gj.zeros((3, 1), requires_grad=True)
b_e = gj.zeros((1,), requires_grad=True)
xs, ys = gj.tensor(data), gj.tensor(target)
optimizer = gj.optim.SGD([w_e, b_e], lr=0.1)
for _ in range(50):
    optimizer.zero_grad()
    eager_loss = gj.mean(gj.square(xs @ w_e + b_e - ys))
    eager_loss.backward()
    optimizer.step()
print(f"eager:  loss after 50 SGD steps {eager_loss.item():.6f} (grad_fn {eager_loss.grad_fn})")


# ---- 3. gj.function: eager-style code, traced once and compiled --------------------------
@gj.function
def sgd_step(w, b, x, y, lr):
    loss = gj.mean(gj.square(x @ w + b - y))
    dw, db = gj.gradients(loss, [w, b])
    return loss, w - lr * dw, b - lr * db


w_f, b_f = np.zeros((3, 1), np.float32), np.zeros((1,), np.float32)
for _ in range(50):
    function_loss, w_f, b_f = sgd_step(w_f, b_f, data, target, 0.1)
print(f"gj.function: loss after 50 steps {function_loss:.6f} ({sgd_step.trace_count} trace)")

# The three agree: the same model, the same updates.
assert sgd_step.trace_count == 1
np.testing.assert_allclose(static_w, w_e.numpy(), rtol=1e-4, atol=1e-5)
np.testing.assert_allclose(w_f, w_e.numpy(), rtol=1e-4, atol=1e-5)
assert abs(static_loss - eager_loss.item()) < 1e-5 and abs(function_loss - static_loss) < 1e-5
assert static_loss < 0.01 and steps_v > 0 and sign_v in (1.0, -1.0)
print("static, eager and gj.function agree")
