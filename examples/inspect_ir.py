"""Looking inside the compiler: draw a graph with Graphviz (`g.to_dot()`), print the IR
after each pass of the pipeline (`sess.inspect(...).ir`, or GRAPHJIT_PRINT_IR=1 for every
compile), and see what a gj.function traced.
Run: python examples/inspect_ir.py [output-folder]   (render: dot -Tsvg graph.dot -o graph.svg)"""

import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

import graphjit as gj

out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="graphjit-"))
out_dir.mkdir(parents=True, exist_ok=True)

g = gj.Graph()
with g.as_default():
    x = gj.placeholder(gj.float32, [None, 4], name="x")
    w = gj.Variable(np.full((4, 2), 0.5, np.float32), name="w")
    y = gj.tanh(x @ w) * 2.0 + 1.0
    loss = gj.mean(gj.square(y))
    (dw,) = gj.gradients(loss, [w])

# 1. the graph as the user built it: IR text, and Graphviz source written to a file
print(g.as_text())
dot_file = out_dir / "graph.dot"
dot_file.write_text(g.to_dot())
print(f"wrote {dot_file} ({len(g.ops)} ops); render it with: dot -Tsvg {dot_file} -o graph.svg\n")

# 2. what the compiler made of it: the IR after each stage of the pipeline
feed = {x: np.ones((3, 4), np.float32)}
with gj.Session(g) as sess:
    report = sess.inspect([loss, dw], feed)
    print(report, "\n")
    for stage, text in report.ir.items():
        print(f"// ---- after {stage}: {len(text.splitlines())} lines, "
              f"{text.count(' fused ')} fused kernels")  # fmt: skip
    print(report.ir["fusion"])
    loss_v, dw_v = sess.run([loss, dw], feed)

# 3. the same, printed by the pass manager for every compile: GRAPHJIT_PRINT_IR=1
os.environ["GRAPHJIT_PRINT_IR"] = "1"
printed = io.StringIO()
with contextlib.redirect_stderr(printed), gj.Session(g) as sess:
    sess.run(loss, feed)
del os.environ["GRAPHJIT_PRINT_IR"]
stages = [line for line in printed.getvalue().splitlines() if line.startswith("// ----- IR")]
print("GRAPHJIT_PRINT_IR=1 printed:", ", ".join(s.split()[-2] for s in stages))


# 4. what a gj.function traced for one signature
@gj.function
def predict(x, w):
    return gj.softmax(x @ w)


concrete = predict.concrete(np.ones((2, 4), np.float32), np.ones((4, 3), np.float32))
(out_dir / "predict.dot").write_text(concrete.graph.to_dot())
print("\ngj.function 'predict' traced:\n" + concrete.graph.as_text())

assert dot_file.read_text().startswith("digraph") and "matmul" in dot_file.read_text()
assert list(report.ir)[0] == "input" and "fusion" in report.ir
assert "fused" not in report.ir["input"] and "fused" in report.ir["fusion"]
assert any("fusion" in s for s in stages) and report.kernels >= 1
np.testing.assert_allclose(loss_v, np.mean((np.tanh(np.ones((3, 2)) * 2) * 2 + 1) ** 2), rtol=1e-5)
