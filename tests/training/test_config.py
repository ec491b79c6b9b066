"""The shared config helper: defaults, YAML, CLI overrides, type coercion, clear errors."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from training.config import ConfigError, load_config, save_config


@dataclass
class Demo:
    """A demo script."""

    out: Path = Path("outputs/demo")
    steps: int = 10
    lr: float = 1e-4
    teacher: Literal["rule", "llm"] = "rule"
    model: str | None = None
    thoughts: list[str] = field(default_factory=lambda: ["cot", "pot", "eot"])
    verbose: bool = False


def test_defaults_yaml_then_cli_override(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("steps: 50\nlr: 0.001\nteacher: llm\n")
    cfg = load_config(
        Demo, ["--config", str(cfg_file), "--steps", "7", "--thoughts=eot,pot", "--verbose"]
    )
    assert cfg.steps == 7  # CLI beats YAML
    assert cfg.lr == pytest.approx(0.001)  # YAML beats default
    assert cfg.teacher == "llm"
    assert cfg.thoughts == ["eot", "pot"]
    assert cfg.verbose is True
    assert cfg.out == Path("outputs/demo")
    assert cfg.model is None
    assert load_config(Demo, ["--model", "gpt-x"]).model == "gpt-x"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--stepz", "3"], "unknown setting"),
        (["--steps", "ten"], "expected int"),
        (["--teacher", "oracle"], "not one of"),
        (["--verbose", "maybe"], "true or false"),
        (["steps", "3"], "expected --key value"),
        (["--config", "/nonexistent/x.yaml"], "no such file"),
    ],
)
def test_bad_input_is_a_clear_error(argv, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Demo, argv)


def test_save_config_round_trips(tmp_path):
    cfg = load_config(Demo, ["--steps", "3", "--out", str(tmp_path / "o")])
    path = save_config(cfg, tmp_path / "o")
    assert yaml.safe_load(path.read_text())["steps"] == 3
    assert load_config(Demo, ["--config", str(path)]) == cfg
