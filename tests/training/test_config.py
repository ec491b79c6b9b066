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


@dataclass
class Sampling:
    temperature: float = 0.7
    num_samples: int = 1


@dataclass
class Source:
    model: str = "default"
    adapter: str = "default"


@dataclass
class Composed:
    """A script whose config composes shared sections."""

    source: Source = field(default_factory=lambda: Source(adapter="promoted"))
    sampling: Sampling = field(default_factory=Sampling)
    limit: int = 0


def test_sections_from_yaml_dotted_or_plain_keys_and_saved_nested(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("source:\n  model: big\nsampling: {temperature: 0.2}\nlimit: 5\n")
    cfg = load_config(Composed, ["--config", str(cfg_file), "--sampling.num_samples", "4",
                                 "--adapter", "none", "--temperature=0.3"])  # fmt: skip
    assert cfg.source == Source("big", "none")
    assert cfg.sampling == Sampling(0.3, 4)  # CLI over YAML, key by key
    assert cfg.limit == 5
    assert load_config(Composed, []).source.adapter == "promoted"  # the script's own default
    saved = save_config(cfg, tmp_path / "run")
    assert yaml.safe_load(saved.read_text())["sampling"] == {"temperature": 0.3, "num_samples": 4}
    assert load_config(Composed, ["--config", str(saved)]) == cfg


def test_section_errors_name_the_section():
    with pytest.raises(ConfigError, match=r"unknown setting source\.size; known: source\.adapter"):
        load_config(Composed, ["--source.size", "3"])
    with pytest.raises(ConfigError, match=r"sampling\.num_samples: expected int"):
        load_config(Composed, ["--num_samples", "many"])
    with pytest.raises(ConfigError, match="expected a mapping of Source settings"):
        load_config(Composed, ["--source", "big"])


def test_a_key_two_sections_share_must_be_dotted():
    @dataclass
    class Twice:
        a: Source = field(default_factory=Source)
        b: Source = field(default_factory=Source)

    with pytest.raises(ConfigError, match=r"say --a\.model or --b\.model"):
        load_config(Twice, ["--model", "x"])
    assert load_config(Twice, ["--b.model", "x"]).b.model == "x"
