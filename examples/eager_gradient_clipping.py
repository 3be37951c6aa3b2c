"""Gradient clipping: clip_grad_norm_ rescales all gradients together to a maximum norm;
clip_grad_value_ clamps each element. Run: python examples/eager_gradient_clipping.py"""

import numpy as np

import graphjit as gj

gj.manual_seed(0)
model = gj.nn.Sequential(gj.nn.Linear(4, 8), gj.nn.Tanh(), gj.nn.Linear(8, 1))
x, y = gj.randn(32, 4), 100 * gj.randn(32, 1)  # large targets: large gradients
loss_fn = gj.nn.MSELoss()


def total_norm() -> float:
    return float(np.sqrt(sum(np.sum(p.grad.numpy() ** 2) for p in model.parameters())))


model.zero_grad()
loss_fn(model(x), y).backward()
before = gj.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
print(f"gradient norm before clipping {before.item():.2f}")
print(f"gradient norm after clip_grad_norm_(max_norm=1.0) {total_norm():.4f}")

model.zero_grad()
loss_fn(model(x), y).backward()
gj.nn.utils.clip_grad_value_(model.parameters(), clip_value=0.5)
largest = max(float(np.max(np.abs(p.grad.numpy()))) for p in model.parameters())
print(f"largest gradient element after clip_grad_value_(0.5) {largest:.2f}")

# Training with clipping keeps every step bounded even though the loss is huge at first.
optimizer = gj.optim.SGD(model.parameters(), lr=0.1)
with gj.no_grad():
    print(f"loss before training {loss_fn(model(x), y).item():.1f}")
for _ in range(100):
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    gj.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()
print(f"loss after 100 clipped steps {loss.item():.1f}")
