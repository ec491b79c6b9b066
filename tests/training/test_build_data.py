"""python -m training.build_data end to end: rule and LLM teachers, augmentation, leak check."""

import json
from pathlib import Path

import datasets
import pytest
import yaml

from tests.training.llm_server import FakeOpenAI
from training.build_data import COLUMNS, BuildConfig, build, main
from training.config import load_config
from training.datasets import load_problems, train_validation
from training.teachers.verify import check_many


def test_rule_build_writes_a_verified_dataset_dict_jsonl_stats_and_config(tmp_path, capsys):
    out = tmp_path / "etd"
    code = main(["--limit", "25", "--augment", "1", "--out", str(out), "--progress", "false"])
    assert code == 0
    assert "leak check: clean" in capsys.readouterr().out

    ds = datasets.load_from_disk(str(out))
    assert set(ds) == {"train", "validation"}
    assert tuple(ds["train"].column_names) == COLUMNS
    for split in ("train", "validation"):
        jsonl = [json.loads(line) for line in (out / f"{split}.jsonl").open()]
        assert [r["id"] for r in jsonl] == ds[split]["id"]

    rows = list(ds["train"]) + list(ds["validation"])
    results = check_many([(r["thought"], r["target"], r["answer"]) for r in rows])
    assert all(r.ok for r in results)
    assert {r["thought"] for r in rows} == {"cot", "pot", "eot"}

    train = list(ds["train"])
    augmented = [r for r in train if r["source"] == "augment"]
    originals = {r["id"].split(":")[0] for r in train if r["source"] == "rule"}
    assert augmented and all(r["origin_id"] in originals for r in augmented)
    val_problems = {r["id"].split(":")[0] for r in ds["validation"]}
    assert not val_problems & (originals | {r["origin_id"] for r in augmented})

    stats = json.loads((out / "stats.json").read_text())
    assert stats["rows"] == {"train": len(ds["train"]), "validation": len(ds["validation"])}
    assert stats["per_thought"]["train"]["eot"] == sum(r["thought"] == "eot" for r in train)
    assert stats["per_source"]["train"]["augment"] == len(augmented)
    assert stats["leak_check"]["clean"] is True
    assert stats["coverage"]["train"]["eot"]["verified"] >= 23
    assert yaml.safe_load((out / "config.yaml").read_text())["augment"] == 1


@pytest.mark.stress
def test_two_processes_build_exactly_the_serial_rows_and_stats(tmp_path):
    outputs = {}
    for num_proc in (1, 2):
        out = tmp_path / f"proc{num_proc}"
        args = ["--limit", "12", "--validation_size", "4", "--augment", "2", "--workers", "2"]
        assert main([*args, "--num_proc", str(num_proc), "--out", str(out), "--progress", "0"]) == 0
        stats = json.loads((out / "stats.json").read_text())
        del stats["seconds"]
        files = [(out / f"{split}.jsonl").read_text() for split in ("train", "validation")]
        outputs[num_proc] = (files, stats)
    assert outputs[2] == outputs[1]
    (train, _), stats = outputs[1]
    assert stats["per_source"]["train"]["augment"] > 0 and '"source": "augment"' in train


def test_evaluation_questions_are_kept_out_of_training_data(tmp_path):
    svamp = load_problems("svamp")[0]
    rows = [
        {"id": f"own-{i}", "question": f"Ann has {i} pens and buys 5 more. How many pens?",
         "answer": i + 5, "source": "own",
         "solution": f"She has {i}+5 = <<{i}+5={i + 5}>>{i + 5} pens.\n#### {i + 5}"}
        for i in range(6, 12)
    ] + [
        {"id": "leaked", "question": svamp["question"].upper(), "answer": 51, "source": "own",
         "solution": "76-25 = <<76-25=51>>51\n#### 51"}
    ]  # fmt: skip
    path = tmp_path / "own.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = build(BuildConfig(train_data=str(path), validation_size=1, out=tmp_path / "o"))
    assert result.stats["drops"]["leak:evaluation_question"] == 1
    questions = [r["question"] for split in result.rows.values() for r in split]
    assert svamp["question"].upper() not in questions
    assert result.stats["leak_check"]["clean"]


def test_llm_build_keeps_only_correct_deduplicated_samples_and_resumes_from_cache(tmp_path):
    cfg = BuildConfig(
        teacher="llm", limit=2, validation_size=200, samples=2, temperature=0.0,
        base_url="", model="teacher-test", api_key="sk-secret", concurrency=2,
        request_timeout=5, retries=1, out=tmp_path / "llm", progress=False,
    )  # fmt: skip
    split_train, split_val = train_validation()
    problems = list(split_train)[:2] + list(split_val)[:2]
    answers = {}
    for i, p in enumerate(problems):
        gold = p["answer"]
        answers[(p["question"], "cot")] = f"Some steps.\nThe answer is {gold}."
        answers[(p["question"], "pot")] = f"ans = {gold} + {1 if i == 0 else 0}"  # one wrong
        answers[(p["question"], "eot")] = f"```\ntotal = {gold}\nans = total\n```"

    with FakeOpenAI(answers) as server:
        cfg.base_url = server.url
        result = build(cfg)
        sent = len(server.requests)
        again = build(cfg)
        assert len(server.requests) == sent == 4 * 3 * 2

    rows = result.rows["train"] + result.rows["validation"]
    assert {r["source"] for r in rows} == {"llm:teacher-test"}
    assert len(rows) == 4 * 3 - 1  # identical samples kept once; the wrong PoT dropped
    drops = result.stats["drops"]
    assert drops["pot:wrong_answer"] == 2 and drops["cot:duplicate"] == 4
    assert result.stats["teacher_cost"]["train"]["completion_tokens"] == 2 * 3 * 2 * 20
    assert again.stats["teacher_cost"]["train"]["requests"] == 0
    assert again.rows == result.rows


def test_the_api_key_is_not_written_to_the_saved_config(tmp_path):
    main(["--limit", "2", "--validation_size", "2", "--api_key", "sk-secret",
          "--out", str(tmp_path), "--progress", "false"])  # fmt: skip
    assert "sk-secret" not in (tmp_path / "config.yaml").read_text()


def test_bad_settings_are_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="unknown thought"):
        build(BuildConfig(thoughts=["cot", "proof"], out=tmp_path))


def test_cli_errors_are_one_clear_line_and_a_nonzero_exit(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert main(["--teacher", "llm", "--model", "m", "--out", str(tmp_path)]) == 2
    assert "OPENAI_BASE_URL" in capsys.readouterr().err
    assert main(["--train_data", "nowhere.jsonl", "--out", str(tmp_path)]) == 2
    assert "unknown dataset" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize("name", ["build_rule", "build_llm"])
def test_shipped_build_configs_load(name):
    path = Path(__file__).resolve().parents[2] / "training" / "configs" / f"{name}.yaml"
    cfg = load_config(BuildConfig, ["--config", str(path)])
    assert cfg.teacher == name.removeprefix("build_")
