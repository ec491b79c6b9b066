"""Dataclass configs for the training scripts: YAML file plus ``--key value`` overrides.

Every ``python -m training.X`` script declares one dataclass of settings and calls
``load_config(ThatConfig, argv)``. Values come, in order of increasing priority, from the dataclass
defaults, a YAML file named with ``--config FILE.yaml``, and ``--key value`` (or ``--key=value``)
arguments. Values are coerced to the declared field types; unknown keys and bad values raise
``ConfigError`` with a sentence saying what was wrong. ``save_config`` writes the resolved config as
``config.yaml`` beside a script's outputs so a run can be repeated.

A field whose type is itself a dataclass is a section shared between scripts (the student and
engine an entry point asks for, ``eotd.engines.StudentChoice``; how it writes,
``eotd.generation.GenerationSettings``): YAML gives it as a mapping, the command line as
``--section.key value``, or as plain ``--key value`` when no other section has that key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
_NONE = {"none", "null", "~", ""}


class ConfigError(ValueError):
    """A config file or command-line override that cannot be applied."""


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (from YAML or a command-line string) to the field type ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.strip().lower() in _NONE)
        if is_none and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError("; ".join(errors))
    if origin in (list, tuple):
        items = value
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(items, list | tuple):
            raise ConfigError(f"--{key}: expected a list, got {value!r}")
        inner = args[0] if args else str
        coerced = [_coerce(v, inner, key) for v in items]
        return coerced if origin is list else tuple(coerced)
    if origin is typing.Literal:
        for choice in args:
            if str(choice) == str(value):
                return choice
        raise ConfigError(f"--{key}: {value!r} is not one of {', '.join(map(str, args))}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"--{key}: expected true or false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"--{key}: expected a number, got {value!r}")
        try:
            number = float(value) if tp is float else int(str(value).replace("_", ""))
        except ValueError:
            raise ConfigError(f"--{key}: expected {tp.__name__}, got {value!r}") from None
        return number
    if tp is str:
        return str(value)
    if tp is Path:
        return Path(str(value))
    if tp is Any:
        return value
    raise ConfigError(f"--{key}: unsupported field type {tp!r}")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default if f.default is not dataclasses.MISSING else "(required)"


def _usage(cls: type) -> str:
    lines = [f"Settings ({cls.__name__}); give --config FILE.yaml and/or --key value:"]
    for f in dataclasses.fields(cls):
        default = _default(f)
        if dataclasses.is_dataclass(default):
            lines.append(f"  {f.name}: ({type(default).__name__})")
            lines += [f"    --{f.name}.{k} (default: {v!r})" for k, v in vars(default).items()]
        else:
            lines.append(f"  --{f.name} (default: {default!r})")
    doc = (cls.__doc__ or "").strip()
    return "\n".join([doc, "", *lines] if doc else lines)


def _nest(values: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """Put ``section.key`` and plain keys that only one section has into their sections."""
    sections = {name: _field_types(tp) for name, tp in fields.items() if _is_section(tp)}
    owners: dict[str, list[str]] = {}
    for name, keys in sections.items():
        for key in keys:
            owners.setdefault(key, []).append(name)
    nested: dict[str, Any] = {}
    for key, value in values.items():
        section, dot, inner = key.partition(".")
        if not dot and key not in fields and len(owners.get(key, [])) > 1:
            named = " or ".join(f"--{o}.{key}" for o in owners[key])
            raise ConfigError(f"--{key} is a setting of several sections: say {named}")
        if not dot and key not in fields and key in owners:
            section, dot, inner = owners[key][0], ".", key
        if dot and section in sections:
            if inner not in sections[section]:
                known = ", ".join(f"{section}.{k}" for k in sorted(sections[section]))
                raise ConfigError(f"unknown setting {section}.{inner}; known: {known}")
            nested.setdefault(section, {})[inner] = value
        elif dot:
            raise ConfigError(f"--{key}: {section} is not a section of settings")
        elif key in sections and isinstance(value, dict):
            nested.setdefault(key, {}).update(value)
        else:
            nested[key] = value
    return nested


def _section(start: Any, values: dict[str, Any], name: str) -> Any:
    """The section ``start`` (its config's default) with ``values`` over it."""
    if not isinstance(values, dict):
        raise ConfigError(f"{name}: expected a mapping of {type(start).__name__} settings")
    types_ = _field_types(type(start))
    kwargs = {k: _coerce(v, types_[k], f"{name}.{k}") for k, v in values.items()}
    try:
        return dataclasses.replace(start, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _merge(values: dict[str, Any], new: dict[str, Any]) -> None:
    """``new`` over ``values``, section by section."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value


def parse_overrides(argv: list[str]) -> dict[str, str]:
    """Turn ``['--a', '1', '--b=2', '--flag']`` into ``{'a': '1', 'b': '2', 'flag': 'true'}``."""
    out: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ConfigError(f"expected --key value, got {arg!r}")
        key, eq, val = arg[2:].partition("=")
        if not eq:
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                val = argv[i + 1]
                i += 1
            else:
                val = "true"
        out[key.replace("-", "_")] = val
        i += 1
    return out


def load_config(cls: type[T], argv: list[str] | None = None) -> T:
    """Build a ``cls`` from its defaults, ``--config FILE.yaml`` and ``--key value`` overrides.

    ``--help`` prints the settings and exits. Raises ``ConfigError`` on unknown keys or bad values.
    """
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--help" in argv or "-h" in argv:
        print(_usage(cls))
        raise SystemExit(0)
    overrides = parse_overrides(argv)
    fields = _field_types(cls)
    values: dict[str, Any] = {}
    config_file = overrides.pop("config", None)
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"--config: no such file {path}")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"--config: {path} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"--config: {path} must hold a mapping of settings")
        values = _nest(loaded, fields)
    _merge(values, _nest(overrides, fields))
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}"
        )
    defaults = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {
        k: _section(_default(defaults[k]), v, k)
        if _is_section(fields[k])
        else _coerce(v, fields[k], k)
        for k, v in values.items()
    }
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


def config_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain YAML-safe values (paths and tuples become strings and lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {f.name: plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def save_config(cfg: Any, directory: str | Path, name: str = "config.yaml") -> Path:
    """Write the resolved ``cfg`` to ``directory/name`` (making the directory); return the path."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_text(yaml.safe_dump(config_dict(cfg), sort_keys=False), encoding="utf-8")
    return path
