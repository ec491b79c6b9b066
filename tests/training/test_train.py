"""Fine-tuning a tiny model end to end on CPU: it learns the targets and learns to stop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset

from eotd.model_loading import load_model
from eotd.prompts import build_prompt
from eotd.student import GenerationSettings, Student
from eotd.torch_engine import TorchEngine
from training.tiny_model import make_tiny_model
from training.train import encode_row, main

ROWS = [
    (
        "q1",
        "Tom has 3 apples and buys 4 more. How many apples?",
        "pot",
        "a = 3\nb = 4\nans = a + b",
    ),
    (
        "q1",
        "Tom has 3 apples and buys 4 more. How many apples?",
        "cot",
        "3 + 4 = 7. The answer is 7.",
    ),
    (
        "q1",
        "Tom has 3 apples and buys 4 more. How many apples?",
        "eot",
        "a = 3\nb = 4\nc = a + b\nans = c",
    ),
    ("q2", "A box holds 6 eggs. How many eggs in 5 boxes?", "pot", "ans = 6 * 5"),
    ("q2", "A box holds 6 eggs. How many eggs in 5 boxes?", "cot", "6 * 5 = 30. The answer is 30."),
    ("q2", "A box holds 6 eggs. How many eggs in 5 boxes?", "eot", "e = 6 * 5\nans = e"),
]


def _rows() -> list[dict]:
    return [
        {"id": f"{o}-{t}", "question": q, "thought": t, "target": target, "answer": 0.0,
         "source": "rule", "origin_id": o}
        for o, q, t, target in ROWS
    ]  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [build_prompt(q, t) + target for _, q, t, target in ROWS]
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", texts * 5)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("etd") / "etd_rule"
    Dataset.from_list(_rows()).save_to_disk(str(path))
    return path


def _train(tiny: Path, data: Path, out: Path, *extra: str) -> dict:
    main([
        "--config", "training/configs/tiny_cpu.yaml", "--base", str(tiny), "--data", str(data),
        "--output_dir", str(out), *extra,
    ])  # fmt: skip
    return json.loads((out / "metrics.json").read_text())


def test_labels_cover_target_and_final_eos_although_pad_is_eos(tiny: Path) -> None:
    tokenizer = load_model(str(tiny), adapter=None, device="cpu").tokenizer
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    q, thought, target = ROWS[0][1:]
    enc = encode_row(tokenizer, q, thought, target)
    prompt_len = len(tokenizer(build_prompt(q, thought))["input_ids"])
    assert enc["labels"][:prompt_len] == [-100] * prompt_len
    assert enc["labels"][-1] == tokenizer.eos_token_id
    assert tokenizer.decode(enc["labels"][prompt_len:-1]) == target


def test_full_finetune_memorizes_targets_and_stops(tiny: Path, data: Path, tmp_path: Path) -> None:
    metrics = _train(tiny, data, tmp_path / "run", "--method", "full", "--max_steps", "120")
    assert metrics["train_rows"] + metrics["val_rows"] == len(ROWS)
    assert metrics["train_loss"] < 2.0
    assert (tmp_path / "run" / "config.yaml").is_file()

    student = Student.from_pretrained(
        str(tmp_path / "run" / "final"), None, engine="torch", device="cpu", max_new_tokens=40
    )
    _, q, thought, target = ROWS[3]
    text, _, ended = student.generate([build_prompt(q, thought)])[0]
    assert ended, "the trained model must end its thought with eos"
    assert text == target


def test_lora_run_resumes_and_ships_an_adapter(tiny: Path, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "lora"
    first = _train(tiny, data, out, "--method", "lora", "--max_steps", "4", "--epochs", "1")
    assert first["resumed_from"] is None
    second = _train(tiny, data, out, "--method", "lora", "--max_steps", "8")
    assert second["resumed_from"] is not None and second["steps"] == 8
    assert (out / "final" / "adapter_config.json").is_file()
    loaded = load_model(str(tiny), out / "final", device="cpu")
    student = Student(TorchEngine(loaded), GenerationSettings(8))
    assert len(student.generate(["Question: hi\n"])) == 1


def test_time_limit_stops_and_saves(tiny: Path, data: Path, tmp_path: Path) -> None:
    metrics = _train(tiny, data, tmp_path / "run", "--max_steps", "50", "--time_limit_s", "0.001")
    assert metrics["stopped_at_time_limit"] and metrics["steps"] == 1
    assert (tmp_path / "run" / "final" / "config.json").is_file()


def test_missing_data_is_a_clear_error(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no training data"):
        _train(tiny, tmp_path / "nowhere", tmp_path / "run")


@pytest.mark.stress
def test_lr_by_time_warms_up_and_decays_within_the_time_budget(
    tiny: Path, data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "timed"
    metrics = _train(
        tiny, data, out, "--max_steps", "-1", "--epochs", "1000", "--time_limit_s", "4",
        "--lr_by_time", "true",
        "--learning_rate", "1e-3", "--warmup_ratio", "0.2", "--logging_steps", "1",
    )  # fmt: skip
    assert metrics["stopped_at_time_limit"]
    history = json.loads((out / "log_history.json").read_text())
    rates = [h["learning_rate"] for h in history if "learning_rate" in h]
    assert len(rates) >= 5
    peak = max(rates)
    assert 5e-4 < peak <= 1e-3
    assert rates.index(peak) > 0, "the lr warms up first"
    assert rates[-1] < 0.25 * peak, "the cosine has decayed by the end of the budget"


def test_lr_by_time_needs_a_time_limit(tiny: Path, data: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lr_by_time needs time_limit_s"):
        _train(tiny, data, tmp_path / "run", "--lr_by_time", "true")
