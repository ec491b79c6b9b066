"""Training and evaluation as two real processes on the CPU (accelerate's torchrun, gloo).

Two processes of batch 2 train the adapter one process of batch 4 trains, a two-process run cut
at its time limit resumes to the adapter of an uncut run, and a two-process evaluation writes the
predictions one process writes.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import Dataset
from safetensors.torch import load_file

from eotd.prompts import THOUGHTS, build_prompt
from tests.training.support import PROBLEMS
from training import evaluate, train
from training.tiny_model import make_tiny_model

pytestmark = pytest.mark.stress

REPO = Path(__file__).resolve().parents[2]
# float32 sums of the same gradients in another order: the adapters differ by ~1e-6
TOLERANCE = 1e-5


def _rows() -> list[dict]:
    """Eight different rows: each epoch is two global batches of four."""
    rows = []
    for i in range(8):
        a, b = i + 2, i + 3
        thought = THOUGHTS[i % len(THOUGHTS)]
        target = {
            "cot": f"{a} + {b} = {a + b}. The answer is {a + b}.",
            "pot": f"a = {a}\nb = {b}\nans = a + b",
            "eot": f"a = {a}\nb = {b}\nc = a + b\nans = c",
        }[thought]
        rows.append({
            "id": f"r{i}", "question": f"Tom has {a} apples and buys {b} more. How many apples?",
            "thought": thought, "target": target, "answer": float(a + b), "source": "rule",
            "origin_id": f"q{i}",
        })  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("etd") / "etd_rule"
    Dataset.from_list(_rows()).save_to_disk(str(path))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [build_prompt(r["question"], r["thought"]) + r["target"] for r in _rows()]
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", texts * 5)


def _launch(module: str, *args: str, cpu: bool = False) -> subprocess.CompletedProcess[str]:
    """``accelerate launch`` two processes of ``python -m module args``: ``--multi_gpu`` starts
    them through torchrun (on the CPU here, as the scripts are told ``--device cpu``); ``cpu``
    uses ``--cpu`` instead, which starts one process."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--cpu" if cpu else "--multi_gpu",
        "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "--main_process_port", str(port), "-m", module, *args,
    ]  # fmt: skip
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def _ok(run: subprocess.CompletedProcess[str]) -> None:
    assert run.returncode == 0, run.stderr[-3000:]


def _train_args(tiny: Path, data: Path, out: Path, *extra: str) -> list[str]:
    # no LoRA dropout: each process draws its own dropout masks, so runs would differ by design
    return [
        "--config", str(REPO / "training/configs/tiny_cpu.yaml"), "--base", str(tiny),
        "--data", str(data), "--output_dir", str(out), "--method", "lora", "--lora_dropout", "0",
        "--max_steps", "6", "--val_fraction", "0", "--save_dtype", "fp32", *extra,
    ]  # fmt: skip


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def _gap(run: Path, other: Path) -> float:
    """The largest difference between the weights of two runs' final adapters."""
    a, b = (load_file(r / "final" / "adapter_model.safetensors") for r in (run, other))
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def two(tiny: Path, data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two processes of batch 2, six steps, uncut."""
    out = tmp_path_factory.mktemp("two") / "run"
    _ok(_launch("training.train", *_train_args(tiny, data, out, "--batch_size", "2")))
    return out


def test_two_processes_of_batch_2_train_the_adapter_of_one_of_batch_4(
    two: Path, tiny: Path, data: Path, tmp_path: Path
) -> None:
    metrics = _metrics(two)
    assert metrics["processes"] == 2 and metrics["steps"] == 6
    # 8 rows in global batches of 4: each step took 2 rows on each process, 6 steps are 3 epochs
    assert json.loads((two / "log_history.json").read_text())[-1]["epoch"] == 3.0

    train.main(_train_args(tiny, data, tmp_path / "one", "--batch_size", "4"))
    train.main(_train_args(tiny, data, tmp_path / "half", "--batch_size", "2"))
    assert _gap(two, tmp_path / "one") < TOLERANCE
    assert _gap(two, tmp_path / "half") > 100 * TOLERANCE, "another global batch is far away"


def test_a_two_process_run_cut_at_its_time_limit_resumes_to_the_uncut_adapter(
    two: Path, tiny: Path, data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cut"
    args = _train_args(tiny, data, out, "--batch_size", "2")
    _ok(_launch("training.train", *args, "--time_limit_s", "0.001"))
    cut = _metrics(out)
    assert cut["stopped_at_time_limit"] and cut["steps"] == 1, "both processes stop at step 1"
    assert (out / "checkpoint-1").is_dir()

    _ok(_launch("training.train", *args))
    resumed = _metrics(out)
    assert resumed["resumed_from"] == str(out / "checkpoint-1") and resumed["steps"] == 6
    assert _gap(out, two) < TOLERANCE


def test_accelerate_cpu_launch_of_two_processes_is_refused(
    tiny: Path, data: Path, tmp_path: Path
) -> None:
    """``accelerate launch --cpu`` starts one process: training must not run as if it were two."""
    run = _launch("training.train", *_train_args(tiny, data, tmp_path / "run"), cpu=True)
    assert run.returncode != 0
    assert "starts a single process" in run.stderr and "torchrun --nproc_per_node" in run.stderr
    assert not (tmp_path / "run").exists()


def test_two_process_evaluation_writes_the_predictions_of_one(
    trained: Path, tmp_path: Path
) -> None:
    # five problems (shards of three and two): the two the student learned, then variants
    asked = [
        (f"{i}-{k}", f"{q} ({k})" if k else q, a) for k in range(3) for i, q, a, *_ in PROBLEMS
    ][:5]
    problems = tmp_path / "mini.jsonl"
    problems.write_text("".join(
        json.dumps({"id": i, "question": q, "answer": a}) + "\n" for i, q, a in asked
    ))  # fmt: skip
    # One row per batch: a shard's batches are padded as the whole set's are, so the text and
    # log-probabilities match to the byte (in other batches, the 7th digit of a log-prob may not).
    args = [
        "--model", str(trained), "--adapter", "none", "--datasets", str(problems),
        "--max_new_tokens", "24", "--device", "cpu", "--engine", "torch", "--precision", "float32",
        "--threads", "1", "--batch_size", "1",
    ]  # fmt: skip
    evaluate.main([*args, "--output_dir", str(tmp_path / "one")])
    _ok(_launch("training.evaluate", *args, "--output_dir", str(tmp_path / "two")))

    one, two = (tmp_path / "one", tmp_path / "two")
    written = (two / "predictions_mini.jsonl").read_text()
    assert written == (one / "predictions_mini.jsonl").read_text()
    assert [json.loads(x)["id"] for x in written.splitlines()] == [i for i, _, _ in asked]
    reports = [json.loads((run / "metrics.json").read_text()) for run in (one, two)]
    assert [r["processes"] for r in reports] == [1, 2]
    for key in ("accuracy", "answered", "status", "hit_max_new_tokens"):
        assert reports[0]["datasets"]["mini"][key] == reports[1]["datasets"]["mini"][key]
    assert reports[1]["datasets"]["mini"]["accuracy"]["majority"] >= 40.0  # the two it learned
