"""A small MLP classifier in eager mode: is a 2-D point inside the unit circle? Trained with
Adam and cross-entropy. Run: python examples/eager_mlp.py"""

import numpy as np

import graphjit as gj

gj.manual_seed(0)
rng = np.random.default_rng(0)
points = rng.uniform(-1.5, 1.5, (400, 2)).astype(np.float32)
labels = (np.sum(points**2, axis=1) < 1.0).astype(np.int64)
x, y = gj.tensor(points), gj.tensor(labels)

model = gj.nn.Sequential(
    gj.nn.Linear(2, 32),
    gj.nn.ReLU(),
    gj.nn.Linear(32, 32),
    gj.nn.Tanh(),
    gj.nn.Linear(32, 2),
)
loss_fn = gj.nn.CrossEntropyLoss()
optimizer = gj.optim.Adam(model.parameters(), lr=0.01)

for step in range(300):
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    if step % 100 == 0:
        print(f"step {step:3d}  loss {loss.item():.4f}")

model.eval()
with gj.no_grad():
    predictions = model(x).argmax(dim=1)
accuracy = float((predictions == y).numpy().mean())
print(f"final loss {loss.item():.4f}")
print(f"training accuracy {accuracy:.3f}")
