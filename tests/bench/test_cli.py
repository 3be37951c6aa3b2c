"""`graphjit bench` and `python -m graphjit.bench` from the command line."""

import json
import os
import subprocess
import sys

from graphjit import cli
from graphjit.bench.schema import validate

FAST = ["--tiny", "--modes", "numpy,gj-eager,gj-llvm", "--no-progress", "--repeat", "1"]


def test_bench_writes_the_table_json_and_markdown(tmp_path, capsys):
    json_path, markdown_path = tmp_path / "bench.json", tmp_path / "bench.md"
    argv = ["bench", *FAST, "--only", "elementwise,loop_add"]
    argv += ["--json", str(json_path), "--markdown", str(markdown_path)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "elementwise" in out and "graphjit static (llvm)" in out and "vs gj eager" in out
    written = json.loads(json_path.read_text())
    validate(written)
    assert written["settings"]["size"] == "tiny"
    assert written["settings"]["workloads"] == ["elementwise", "loop_add"]
    markdown = markdown_path.read_text()
    assert markdown.startswith("| workload | NumPy | graphjit eager |")
    assert "| workload | mode | median |" in markdown


def test_bench_rejects_an_unknown_workload(capsys):
    assert cli.main(["bench", *FAST, "--only", "nonesuch"]) == 2
    assert "unknown workload" in capsys.readouterr().err


def test_bench_lists_workloads_and_modes(capsys):
    assert cli.main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    assert "mlp_train_step" in out and "torch-compile" in out and "tf1" in out


def test_python_dash_m_runs_the_same_command():
    completed = subprocess.run(
        [sys.executable, "-m", "graphjit.bench", "--list"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert "rnn_backward" in completed.stdout


def test_a_reader_that_goes_away_costs_no_written_file(tmp_path):
    # `graphjit bench ... | head -3`: the table's reader is gone before the files are
    # written; the run still writes them and exits without a traceback
    json_path, markdown_path = tmp_path / "bench.json", tmp_path / "bench.md"
    argv = [sys.executable, "-m", "graphjit.bench", *FAST, "--only", "loop_add"]
    argv += ["--json", str(json_path), "--markdown", str(markdown_path)]
    read, write = os.pipe()
    os.close(read)  # (the reader is gone before the first line)
    completed = subprocess.run(argv, stdout=write, stderr=subprocess.PIPE, text=True, timeout=300)
    os.close(write)
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr
    validate(json.loads(json_path.read_text()))
    assert markdown_path.read_text().startswith("| workload |")


def test_ctrl_c_ends_the_bench_with_status_130_and_no_traceback(monkeypatch, capsys):
    from graphjit.bench import runner

    def interrupted(config):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_benchmarks", interrupted)
    assert cli.main(["bench", *FAST, "--only", "loop_add"]) == 130
    assert capsys.readouterr().err == "graphjit bench: interrupted\n"
