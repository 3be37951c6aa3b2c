"""A recurrent network run by gj.while_loop over the first `length` steps of a (padded)
sequence, `length` known only at run time, and its gradient through the loop. The static graph's gradient (the loop's
reverse-mode derivative, made source to source) equals eager autograd's, and so does the
gradient of the same code compiled with gj.function.
Run: python examples/rnn_while_loop.py"""

import numpy as np

import graphjit as gj

HIDDEN, FEATURES = 8, 3
rng = np.random.default_rng(0)
params = {
    "w_x": rng.normal(0, 0.5, (FEATURES, HIDDEN)),
    "w_h": rng.normal(0, 0.5, (HIDDEN, HIDDEN)),
    "b": np.zeros(HIDDEN),
    "w_out": rng.normal(0, 0.5, (HIDDEN, 1)),
}
MAX_STEPS = 10
sequence = rng.normal(size=(MAX_STEPS, FEATURES))  # up to 10 steps of 3 features
target = np.array([0.5])


def rnn_loss(seq, length, w_x, w_h, b, w_out, target):
    """h_t = tanh(x_t W_x + h_{t-1} W_h + b) for t < length; squared error of the last state's
    prediction. Works unchanged on eager tensors and on graph tensors."""

    def body(t, h):
        pick = gj.one_hot(t, MAX_STEPS, dtype=seq.dtype)  # row t of seq, t a tensor
        x_t = gj.expand_dims(gj.sum(seq * gj.expand_dims(pick, 1), axis=0), 0)
        return t + 1, gj.tanh(x_t @ w_x + h @ w_h + b)

    h0 = gj.expand_dims(b * 0, 0)
    t0 = length * 0  # the step counter, a tensor of length's mode (eager or graph)
    _, h = gj.while_loop(lambda t, h: t < length, body, [t0, h0])
    prediction = gj.reshape(h @ w_out, (1,))
    return gj.sum(gj.square(prediction - target))


names = list(params)

# eager: the loop runs in Python, the tape records every step
tensors = {k: gj.tensor(v, requires_grad=True) for k, v in params.items()}
eager_loss = rnn_loss(gj.tensor(sequence), gj.tensor(7), *tensors.values(), gj.tensor(target))
eager_loss.backward()
eager_grads = [tensors[k].grad.numpy() for k in names]

# static: the loop is a while op; gj.gradients differentiates it
g = gj.Graph()
with g.as_default():
    seq = gj.placeholder(gj.float64, [MAX_STEPS, FEATURES], name="sequence")
    length = gj.placeholder(gj.int32, [], name="length")
    weights = [gj.Variable(v, name=k) for k, v in params.items()]
    loss = rnn_loss(seq, length, *weights, target)
    grads = gj.gradients(loss, weights)
with gj.Session(g) as sess:
    static_loss, static_grads = sess.run([loss, grads], {seq: sequence, length: 7})
    shorter_loss = sess.run(loss, {seq: sequence, length: 4})  # the same compiled loop

# gj.function: the same function, traced once per sequence shape, backward through it
compiled = gj.function(rnn_loss)
tensors = {k: gj.tensor(v, requires_grad=True) for k, v in params.items()}
compiled_loss = compiled(sequence, np.int32(7), *tensors.values(), target)
compiled_loss.backward()
compiled(sequence, np.int32(4), *params.values(), target)  # another length: no new trace
assert compiled.trace_count == 1

print(f"loss: eager {eager_loss.item():.6f}, static {static_loss:.6f}, "
      f"gj.function {compiled_loss.item():.6f}; on 4 steps {shorter_loss:.6f}")  # fmt: skip
for name, want, got_static in zip(names, eager_grads, static_grads):
    got_compiled = tensors[name].grad.numpy()
    np.testing.assert_allclose(got_static, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_compiled, want, rtol=1e-10, atol=1e-12)
    print(f"d loss / d {name:5s}: max |static - eager| {np.abs(got_static - want).max():.1e}")
assert abs(static_loss - eager_loss.item()) < 1e-12 and shorter_loss != static_loss
print("gradients through the while_loop agree with eager autograd")
