"""Linear regression trained with SGD in eager mode: recover y = 3x - 2 from noisy samples.
Run: python examples/eager_linear_regression.py"""

import numpy as np

import graphjit as gj

gj.manual_seed(0)
x = gj.rand(100, 1) * 4 - 2
y = 3 * x - 2 + 0.05 * gj.randn(100, 1)

model = gj.nn.Linear(1, 1)
loss_fn = gj.nn.MSELoss()
optimizer = gj.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)

for step in range(200):
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    if step % 50 == 0:
        print(f"step {step:3d}  loss {loss.item():.5f}")

weight, bias = model.weight.item(), model.bias.item()
print(f"learned weight {weight:.2f} bias {bias:.2f} (true 3, -2)")
print(f"final loss {loss.item():.4f}")
assert np.isclose(weight, 3, atol=0.05) and np.isclose(bias, -2, atol=0.05)
