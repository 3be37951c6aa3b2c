"""Gradient accumulation: backward() adds into .grad, so four micro-batches whose losses are
scaled by 1/4 give the gradient of the whole batch. Run:
python examples/eager_gradient_accumulation.py"""

import numpy as np

import graphjit as gj

gj.manual_seed(0)
x = gj.randn(64, 5, dtype="float64")
y = gj.randn(64, 1, dtype="float64")
model = gj.nn.Linear(5, 1, dtype="float64")  # float64: the comparison below is exact to ~1e-15
loss_fn = gj.nn.MSELoss()


def gradients():
    return [p.grad.numpy().copy() for p in model.parameters()]


# The whole batch at once.
model.zero_grad()
loss_fn(model(x), y).backward()
full = gradients()

# Four micro-batches of 16, accumulated.
model.zero_grad()
micro_batches = 4
for i in range(micro_batches):
    rows = slice(16 * i, 16 * (i + 1))
    (loss_fn(model(x[rows]), y[rows]) / micro_batches).backward()
accumulated = gradients()

difference = max(float(np.max(np.abs(a - b))) for a, b in zip(full, accumulated))
print(f"max |full-batch grad - accumulated grad| = {difference:.1e}")

# Training with accumulation: step once every 4 micro-batches.
optimizer = gj.optim.SGD(model.parameters(), lr=0.05)
for _ in range(20):
    optimizer.zero_grad()
    for i in range(micro_batches):
        rows = slice(16 * i, 16 * (i + 1))
        (loss_fn(model(x[rows]), y[rows]) / micro_batches).backward()
    optimizer.step()
with gj.no_grad():
    print(f"loss after 20 accumulated steps {loss_fn(model(x), y).item():.4f}")
