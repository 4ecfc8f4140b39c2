"""Loading a stage's configuration: YAML, dotted overrides typed by the field they set, checks
with the nearest valid key, `--help` descriptions, saving (see t1.config)."""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml

from t1.errors import ConfigError
from t1.presets import apply_preset

# ----------------------------------------------------------------------------------------------
# Loading, overriding, checking
# ----------------------------------------------------------------------------------------------


def describe(cls: type) -> list[tuple[str, str, str, str]]:
    """(key, type, default, comment) of every leaf key, for `t1 SUB --help`."""
    return _describe_section(cls(), "")


def _describe_section(section: Any, prefix: str) -> list[tuple[str, str, str, str]]:
    cls = type(section)
    comments = _field_comments(cls)
    rows = []
    for f in dataclasses.fields(cls):
        tp = _hints(cls)[f.name]
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(tp):
            rows.extend(_describe_section(value, prefix + f.name + "."))
        else:
            rows.append((prefix + f.name, _type_name(tp), repr(value), comments.get(f.name, "")))
    return rows


def _field_comments(cls: type) -> dict[str, str]:
    """The `# comment` lines right above each field in the class source."""
    import inspect

    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    out, pending = {}, []
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("# "))
        elif ":" in stripped and not stripped.startswith(("def ", '"')):
            name = stripped.split(":", 1)[0].strip()
            if name.isidentifier() and pending:
                out[name] = " ".join(pending)
            pending = []
        else:
            pending = []
    return out


def dotted_keys(cls: type, prefix: str = "") -> list[str]:
    """Every valid dotted key of a dataclass, sections included."""
    keys = []
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        keys.append(key)
        tp = _hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            keys.extend(dotted_keys(tp, key + "."))
    return keys


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _nearest(key: str, cls: type) -> str:
    """' (did you mean ...)' with the valid key closest to `key`, by its last part first."""
    candidates = dotted_keys(cls)
    leaf = key.rsplit(".", 1)[-1]
    by_leaf: dict[str, str] = {}
    for c in candidates:
        by_leaf.setdefault(c.rsplit(".", 1)[-1], c)
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if not close:
        leaves = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.6)
        close = [by_leaf[leaves[0]]] if leaves else []
    if not close:
        close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.0)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        return str(tp).replace("typing.", "")
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`, converting where lossless (int -> float)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    bad = ConfigError(
        f"config key '{key}': expected {_type_name(tp)}, got {value!r} ({type(value).__name__})"
    )
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad
        return _build(tp, value, key + ".")
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise bad
    if origin is Literal:
        if value in args:
            return value
        raise bad
    if tp is type(None):
        if value is None:
            return None
        raise bad
    if tp is Any:
        return value
    if origin is list:
        if not isinstance(value, list | tuple):
            raise bad
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise bad
        return {str(k): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.lower()]
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads 1e-5 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    raise bad


def _build(
    cls: type, data: dict, prefix: str = "", root: type | None = None, base: Any = None
) -> Any:
    """Set the keys of `data` on `base` (the section's defaults as the stage declares them)."""
    root = root or cls
    obj = base if base is not None else cls()
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for name, value in data.items():
        key = prefix + str(name)
        if name not in names:
            raise ConfigError(f"unknown config key '{key}'{_nearest(key, root)}")
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(
                    f"config key '{key}': expected a mapping (section), got {value!r}"
                )
            value = _build(tp, value, key + ".", root, getattr(obj, name))
        else:
            value = _coerce(value, tp, key)
        setattr(obj, name, value)
    return obj


class _Loader(yaml.SafeLoader):
    """YAML whose booleans are YAML 1.2's, true and false: `on`, `off`, `yes`, `no` stay text,
    so `data.chat_template: on` is the string a Literal field expects."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# YAML 1.1's other boolean words, which a bool field still takes
_BOOL_WORDS = {"yes": True, "on": True, "no": False, "off": False}


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def _takes_text(tp: Any, text: str) -> bool:
    """Whether an override's text is its value as written: a str field, or a Literal naming it.

    ("model.path=123" is the path "123", "data.chat_template=on" the string "on".)
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is str:
        return True
    if origin is Literal:
        return text in args
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.lower() in ("null", "~"):
            return False
        return any(_takes_text(a, text) for a in args)
    return False


def _parse_override(item: str, cls: type) -> tuple[list[str], Any]:
    """(key path, value) of one `key=value`; the value is read as the key's type expects."""
    if "=" not in item:
        raise ConfigError(f"override '{item}' is not of the form key=value")
    key, text = item.split("=", 1)
    key = key.strip()
    path = key.split(".")
    tp: Any = cls
    for i, part in enumerate(path):
        if not dataclasses.is_dataclass(tp) or part not in _hints(tp):
            raise ConfigError(f"unknown config key '{key}'{_nearest(key, cls)}")
        tp = _hints(tp)[part]
        if i < len(path) - 1 and typing.get_origin(tp) is dict:
            return path[: i + 1], {".".join(path[i + 1 :]): _yaml(text)}
    if _takes_text(tp, text):
        return path, text
    try:
        return path, _yaml(text)
    except yaml.YAMLError:
        return path, text


def _set_path(data: dict, path: list[str], value: Any) -> None:
    for part in path[:-1]:
        node = data.get(part)
        if not isinstance(node, dict):
            node = data[part] = {}
        data = node
    if isinstance(value, dict) and isinstance(data.get(path[-1]), dict):
        data[path[-1]].update(value)
    else:
        data[path[-1]] = value


def _legacy_tensorboard(data: dict, value: Any) -> None:
    """`trainer.tensorboard: BOOL`, which `trainer.report_to` replaced: true puts TensorBoard in
    the list, false takes it out, so configs and run directories written before still load."""
    if not isinstance(value, bool):
        raise ConfigError(
            f"config key 'trainer.tensorboard' (replaced by 'trainer.report_to'): expected bool, "
            f"got {value!r}; write e.g. trainer.report_to=[tensorboard,wandb]"
        )
    warnings.warn(
        "config key 'trainer.tensorboard' is replaced by 'trainer.report_to' "
        "(e.g. trainer.report_to=[tensorboard,wandb]); read as such",
        FutureWarning,
        stacklevel=4,
    )
    trainer = data.setdefault("trainer", {})
    report = trainer.get("report_to", ["tensorboard"]) if isinstance(trainer, dict) else None
    if isinstance(report, list):  # anything else is left for the type check to report
        rest = [r for r in report if r != "tensorboard"]
        trainer["report_to"] = ["tensorboard", *rest] if value else rest


def _legacy_key(cls: type, data: dict, item: str | None = None) -> bool:
    """Read a replaced key of the file's `data` (item None) or of the override `item` into
    `data` (in place); True when `item` was one."""
    if "trainer" not in _hints(cls):
        return False
    if item is None:
        trainer = data.get("trainer")
        if isinstance(trainer, dict) and "tensorboard" in trainer:
            _legacy_tensorboard(data, trainer.pop("tensorboard"))
        return False
    key, _, text = item.partition("=")
    if key.strip() != "trainer.tensorboard":
        return False
    try:
        _legacy_tensorboard(data, yaml.safe_load(text))
    except yaml.YAMLError:
        _legacy_tensorboard(data, text)
    return True


def load_config(cls: type, path: str | Path | None = None, overrides: list[str] = ()) -> Any:
    """Build a stage config from a YAML file (optional) and `key.sub=value` overrides."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = _yaml(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f":{mark.line + 1}" if mark else ""
            raise ConfigError(f"{p}{where}: invalid YAML ({getattr(e, 'problem', e)})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of sections")
        data = loaded or {}
    _legacy_key(cls, data)
    for item in overrides:
        if _legacy_key(cls, data, item):
            continue
        keys, value = _parse_override(item, cls)
        _set_path(data, keys, value)
    return apply_preset(_build(cls, data), _dotted(data))


def _dotted(data: dict, prefix: str = "") -> set[str]:
    """Every dotted key written in a nested mapping ("data", "data.preset", ...)."""
    keys = set()
    for name, value in data.items():
        keys.add(prefix + str(name))
        if isinstance(value, dict):
            keys |= _dotted(value, f"{prefix}{name}.")
    return keys


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically (a resume command reads it back)."""
    import os

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)
