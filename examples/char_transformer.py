"""A 2-layer decoder-only character transformer (token and position embeddings, causal
multi-head attention, layer norm, GELU MLP, dropout; AdamW with a cosine learning-rate
schedule) trained on graphjit's own documentation (docs/*.md), three ways from the same
initial weights: a static graph in a Session (TF1 style: the modules are called on
placeholders and their parameters become graph Variables), eager mode with a tape, and
gj.function (the whole training step traced and compiled). With dropout off the three loss
curves agree to float32 tolerance; with dropout on they draw different masks (the static
graph has its own random stream) and agree statistically. Then each model writes a little
text. Run: python examples/char_transformer.py (GRAPHJIT_EXAMPLE_QUICK=1: a few steps)."""

import math
import os
import time
from pathlib import Path

import numpy as np

import graphjit as gj

QUICK = os.environ.get("GRAPHJIT_EXAMPLE_QUICK") == "1"
# sizes: the quick run (the test suite's) takes seconds, the full one a few minutes; the
# quick model has one block (most of its time is compiling the training graph, about
# twice as big with two), the full one two
if QUICK:
    STEPS, BATCH, SEQ, D_MODEL, HEADS, LAYERS, SAMPLE_CHARS = 12, 4, 32, 32, 2, 1, 60
else:
    STEPS, BATCH, SEQ, D_MODEL, HEADS, LAYERS, SAMPLE_CHARS = 300, 16, 64, 64, 4, 2, 240
LR, WEIGHT_DECAY, BETAS, EPS, DROPOUT = 3e-3, 0.01, (0.9, 0.999), 1e-8, 0.1
F = gj.nn.functional

# ---- the text: printable ASCII and newlines, 96 symbols ------------------------------------

ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))  # 96 characters
TEXT = "\n".join(
    p.read_text() for p in sorted((Path(__file__).parent.parent / "docs").glob("*.md"))
)
TEXT = "".join(c if c in ALPHABET else "?" for c in TEXT)
CODES = np.frombuffer(TEXT.encode("ascii"), np.uint8)
TO_INDEX = np.zeros(256, np.int64)
TO_INDEX[[ord(c) for c in ALPHABET]] = np.arange(len(ALPHABET))
DATA = TO_INDEX[CODES]


def batches(steps: int, seed: int = 0) -> list:
    """The same random windows for every mode: (tokens, next tokens), each (BATCH, SEQ)."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(DATA) - SEQ - 1, size=(steps, BATCH))
    windows = DATA[starts[..., None] + np.arange(SEQ + 1)]
    return [(w[:, :-1], w[:, 1:]) for w in windows]


# ---- the model: gj.nn modules, the same code on eager tensors and on graph values --------


class Block(gj.nn.Module):
    """Pre-norm transformer block: x + attention(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = gj.nn.LayerNorm(D_MODEL), gj.nn.LayerNorm(D_MODEL)
        self.qkv, self.proj = gj.nn.Linear(D_MODEL, 3 * D_MODEL), gj.nn.Linear(D_MODEL, D_MODEL)
        self.fc, self.out = gj.nn.Linear(D_MODEL, 4 * D_MODEL), gj.nn.Linear(4 * D_MODEL, D_MODEL)
        self.gelu, self.drop, self.p = gj.nn.GELU(), gj.nn.Dropout(dropout), dropout

    def attention(self, x):
        batch, length = x.shape[0], x.shape[1]
        qkv = gj.reshape(self.qkv(x), [batch, length, 3, HEADS, D_MODEL // HEADS])
        qkv = gj.transpose(qkv, [2, 0, 3, 1, 4])  # (q/k/v, batch, head, position, channel)
        p = self.p if self.training else 0.0
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], dropout_p=p, is_causal=True)
        return gj.reshape(gj.transpose(y, [0, 2, 1, 3]), [batch, length, D_MODEL])

    def forward(self, x):
        x = x + self.drop(self.proj(self.attention(self.ln1(x))))
        return x + self.drop(self.out(self.gelu(self.fc(self.ln2(x)))))


class CharTransformer(gj.nn.Module):
    def __init__(self, dropout: float):
        super().__init__()
        self.tokens = gj.nn.Embedding(len(ALPHABET), D_MODEL)
        self.positions = gj.nn.Embedding(SEQ, D_MODEL)
        self.blocks = gj.nn.ModuleList([Block(dropout) for _ in range(LAYERS)])
        self.ln, self.head = gj.nn.LayerNorm(D_MODEL), gj.nn.Linear(D_MODEL, len(ALPHABET))
        self.drop = gj.nn.Dropout(dropout)

    def forward(self, tokens):
        positions = np.arange(tokens.shape[1])
        x = self.drop(self.tokens(tokens) + self.positions(positions))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def make_model(dropout: float) -> CharTransformer:
    gj.manual_seed(0)  # the same initial weights for every mode
    model = CharTransformer(dropout)
    for name, p in model.named_parameters():  # GPT-2's small initial weights train faster
        if name.endswith("weight") and p.ndim == 2:
            gj.nn.init.normal_(p, 0.0, 0.02)
    gj.manual_seed(1)  # and the same dropout stream for eager and gj.function
    return model


def loss_of(model, tokens, targets):
    logits = model(tokens)
    vocab = len(ALPHABET)
    return gj.nn.softmax_cross_entropy(gj.reshape(logits, [-1, vocab]), gj.reshape(targets, [-1]))


# ---- AdamW and the cosine schedule ------------------------------------------------------------


def learning_rates(steps: int) -> list:
    """The schedule gj.optim.lr_scheduler.CosineAnnealingLR gives, step by step (the graph
    modes are fed it, so all three follow exactly the eager schedule)."""
    optimizer = gj.optim.AdamW([gj.tensor(np.zeros(1, np.float32), requires_grad=True)], lr=LR)
    scheduler = gj.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def adamw_scalars(lr: float, step: int) -> np.ndarray:
    """The host-side numbers of AdamW step `step` (1-based), as gj.optim.AdamW computes them
    in float64 before scaling float32 arrays: the weight-decay factor, lr over the first
    bias correction and the square root of the second."""
    b1, b2 = BETAS
    return np.array(
        [1 - lr * WEIGHT_DECAY, lr / (1 - b1**step), math.sqrt(1 - b2**step)], np.float32
    )


def adamw_in_graph(loss, variables, scalars):
    """AdamW for graph Variables, in the graph (gj.train has no AdamW and takes no
    scheduled learning rate): moment Variables and assigns, gj.optim.AdamW's formulas;
    `scalars` is a graph value holding adamw_scalars(lr, step)."""
    decay, step_size, root_bias2 = scalars[0], scalars[1], scalars[2]
    b1, b2 = BETAS
    updates = []
    for var, grad in zip(variables, gj.gradients(loss, variables)):
        m = gj.Variable(np.zeros(var.shape, np.float32), name=f"{var.name}/m", trainable=False)
        v = gj.Variable(np.zeros(var.shape, np.float32), name=f"{var.name}/v", trainable=False)
        new_m = m + (grad - m) * (1 - b1)
        new_v = v * b2 + grad * (1 - b2) * grad
        denominator = gj.sqrt(new_v) / root_bias2 + EPS
        new_var = var * decay - step_size * (new_m / denominator)
        updates += [m.assign(new_m), v.assign(new_v), var.assign(new_var)]
    return gj.group(*updates)


# ---- three ways to train ------------------------------------------------------------------------


def train_static(dropout: float, data: list):
    """TF1 style: placeholders, the model called on them (its parameters become Variables),
    gradients and AdamW built into one graph, one Session.run per step."""
    model = make_model(dropout)
    graph = gj.Graph()
    with graph.as_default():
        tokens = gj.placeholder(gj.int64, [BATCH, SEQ], name="tokens")
        targets = gj.placeholder(gj.int64, [BATCH, SEQ], name="targets")
        scalars = gj.placeholder(gj.float32, [3], name="adamw_scalars")
        loss = loss_of(model, tokens, targets)
        variables = model.graph_variables(graph)
        train = adamw_in_graph(loss, list(variables.values()), scalars)
    losses = []
    with gj.Session(graph) as sess:
        for step, ((x, y), lr) in enumerate(zip(data, learning_rates(len(data))), start=1):
            feed = {tokens: x, targets: y, scalars: adamw_scalars(lr, step)}
            losses.append(float(sess.run([loss, train], feed)[0]))
        model.load_state_dict(dict(zip(variables, sess.run(list(variables.values())))))
    return losses, model


def train_eager(dropout: float, data: list):
    """PyTorch style: the module, a tape, .backward(), gj.optim.AdamW and its scheduler."""
    model = make_model(dropout)
    optimizer = gj.optim.AdamW(model.parameters(), lr=LR, betas=BETAS, eps=EPS,
                               weight_decay=WEIGHT_DECAY)  # fmt: skip
    scheduler = gj.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=len(data))
    losses = []
    for x, y in data:
        optimizer.zero_grad()
        loss = loss_of(model, gj.tensor(x), gj.tensor(y))
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return losses, model


def train_function(dropout: float, data: list):
    """The eager model, its whole training step compiled by gj.function: the parameters
    are graph Variables while it traces, AdamW's moments live in the compiled graph, and
    the updated parameters are copied back into the module after each call."""
    model = make_model(dropout)

    @gj.function
    def train_step(model, tokens, targets, scalars):
        loss = loss_of(model, tokens, targets)
        adamw_in_graph(loss, list(model.parameters()), scalars)
        return loss

    losses = []
    for step, ((x, y), lr) in enumerate(zip(data, learning_rates(len(data))), start=1):
        losses.append(float(train_step(model, x, y, adamw_scalars(lr, step))))
    assert train_step.trace_count == 1
    return losses, model


MODES = {"static": train_static, "eager": train_eager, "gj.function": train_function}


def train_all(dropout: float) -> dict:
    data = batches(STEPS)
    runs = {}
    for name, train in MODES.items():
        start = time.perf_counter()
        runs[name] = train(dropout, data)
        losses = runs[name][0]
        print(f"dropout {dropout:.1f}  {name:12s} loss {losses[0]:.3f} -> "
              f"{np.mean(losses[-5:]):.3f}  ({time.perf_counter() - start:.1f} s)")  # fmt: skip
    return runs


# ---- checks and sampling ---------------------------------------------------------------------


def check_identical(runs: dict) -> None:
    """Dropout off: the same computation, so the same curve up to float32 rounding, which
    training amplifies slowly (hence a tolerance that grows with the step)."""
    eager = np.array(runs["eager"][0])
    tolerance = 1e-4 * (1 + np.arange(len(eager))) ** 0.5 * eager
    differences = {name: np.abs(np.array(runs[name][0]) - eager) for name in runs}
    for name, difference in differences.items():
        assert np.all(difference <= tolerance), (name, difference.max())
    worst = max(difference.max() for difference in differences.values())
    print(f"dropout off: the three loss curves agree (max difference {worst:.1e})")


def check_statistically_equal(runs: dict, without_dropout: dict) -> None:
    """Dropout on: eager and gj.function draw the same masks (gj.function replays the
    eager random stream), the static graph its own, so its curve differs step by step
    but not on average; and dropout really acted (every curve moved)."""
    curves = {name: np.array(run[0]) for name, run in runs.items()}
    np.testing.assert_allclose(curves["gj.function"], curves["eager"], rtol=1e-3)
    tail = slice(len(curves["eager"]) // 2, None)  # (past the steep start)
    means = {name: curve[tail].mean() for name, curve in curves.items()}
    noise = max(curve[tail].std() / math.sqrt(len(curve[tail])) for curve in curves.values())
    spread = max(means.values()) - min(means.values())
    assert spread <= 4 * noise + 0.02 * means["eager"], (means, noise)
    for name, curve in curves.items():
        assert not np.allclose(curve, without_dropout[name][0], rtol=1e-4), name
    listed = ", ".join(f"{name} {mean:.3f}" for name, mean in means.items())
    print(f"dropout on: mean losses over the second half agree ({listed}; spread "
          f"{spread:.3f}, noise {noise:.3f})")  # fmt: skip


def sample(model, prompt: str, length: int, seed: int = 0) -> str:
    """Characters drawn one at a time from the model's softmax (a seeded NumPy sampler),
    the context cut to the last SEQ characters."""
    rng = np.random.default_rng(seed)
    model.eval()
    codes = [ALPHABET.index(c) for c in prompt]
    with gj.no_grad():
        for _ in range(length):
            logits = model(gj.tensor(np.array([codes[-SEQ:]]))).numpy()[0, -1]
            probabilities = np.exp(logits - logits.max())
            codes.append(int(rng.choice(len(ALPHABET), p=probabilities / probabilities.sum())))
    return "".join(ALPHABET[c] for c in codes)


def main() -> None:
    print(f"{len(TEXT)} characters of docs, {STEPS} steps of {BATCH} x {SEQ}, d_model {D_MODEL}")
    plain = train_all(dropout=0.0)
    check_identical(plain)
    dropped = train_all(dropout=DROPOUT)
    check_statistically_equal(dropped, plain)
    first, last = plain["eager"][0][0], np.mean(plain["eager"][0][-10:])
    assert last < first - (1.0 if not QUICK else 0.05), (first, last)  # it learned something
    for name, (_, model) in dropped.items():
        print(f"--- {name} (dropout {DROPOUT}) writes:\n{sample(model, 'The graph', SAMPLE_CHARS)}")


if __name__ == "__main__":
    main()
