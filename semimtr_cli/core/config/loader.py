"""Typed recipes: nested dataclasses <- YAML file <- ``--set a.b=value`` overrides.

The machinery is generic: any (nested) dataclass is a schema. Field types understood:
``int``, ``float``, ``bool``, ``str``, ``pathlib.Path``, ``Any``, ``Optional[...]`` /
``X | None``, unions, ``Literal[...]``, ``list[T]``, ``tuple[T, ...]`` / ``tuple[A, B]``,
``dict[str, T]``, nested dataclasses (also ``Optional``) and lists of dataclasses.

Rules (stricter than the official code, which silently ignores unknown keys):

* an unknown key is an error naming the dotted key, the file and the closest valid key;
* a value of the wrong type is an error naming the key, the expected type and the value;
* ``1e-4`` (which PyYAML reads as a string) is accepted for a float; ints are accepted for
  floats; integral floats/strings (``1e4``) for ints; numbers for strings; a single scalar
  for a list (``--set data.train=path`` means ``[path]``);
* overrides are applied to the YAML mapping before conversion, so they may supply keys the
  file lacks; their values are parsed with ``yaml.safe_load`` and checked at once, so an error
  names the ``--set`` argument.

This module is the front door (sources in, YAML out). The work is split by job:
``config_types.py`` checks and coerces values against field types (and words the "did you
mean" hints), ``config_overrides.py`` parses and applies ``--set`` arguments. Every public
name stays importable from here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

import yaml

from semimtr_cli.core.config.overrides import OverrideError, apply_override, parse_override
from semimtr_cli.core.config.types import ConfigError, Invalid, UnknownKey, build, is_instance, to_plain, type_name
from semimtr_cli.core.fsutil import atomic_write_text

__all__ = [
    "ConfigError", "OverrideError", "type_name", "from_dict", "read_yaml", "parse_override",
    "apply_override", "load_config", "to_dict", "dump_yaml", "save_config",
]

T = TypeVar("T")

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def from_dict(cls: type[T], data: Mapping | None, *, source: str = "<config>") -> T:
    """Build ``cls`` from a plain mapping, checking every key and value.

    Raises:
        ConfigError: ``"<source>: unknown key 'a.b' (did you mean 'a.c'?)"`` and the like.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(data).__name__}")
    try:
        return build(cls, data, "")
    except UnknownKey as err:
        raise ConfigError(f"{source}: {err.describe(cls)}") from None
    except Invalid as err:
        raise ConfigError(f"{source}: {err}") from None


def read_yaml(path: str | Path) -> dict:
    """Load a YAML mapping; an empty file is ``{}``. Raises ConfigError on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: recipe file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read recipe ({err.__class__.__name__}: {err})") from None
    try:
        data = yaml.load(text, Loader=_YAML_LOADER)  # safe loader (C version when available)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def load_config(
    cls: type[T],
    source: str | Path | Mapping | Any | None = None,
    overrides: Sequence[str] = (),
) -> T:
    """Build a ``cls`` instance from a YAML file, a mapping, an instance or nothing (defaults),
    then apply ``--set`` overrides (``["optim.lr=3e-4", "data.train=[a,b]"]``).

    Raises:
        ConfigError: file missing/unreadable/invalid, unknown key, wrong type, missing key.
        OverrideError: a malformed or unknown ``--set`` (a UsageError, exit code 2).
    """
    if isinstance(source, (str, Path)):
        name = str(source)
        data = read_yaml(source)
    elif source is None:
        name, data = "<defaults>", {}
    elif is_instance(source):
        name, data = "<config>", to_dict(source)
    elif isinstance(source, Mapping):
        name, data = "<config>", to_plain(source)
    else:
        raise TypeError(f"cannot load a config from {type(source).__name__}")
    if overrides:
        data = dict(data)
        for text in overrides:
            apply_override(cls, data, text)
    return from_dict(cls, data, source=name)


# ------------------------------------------------------------------------------- back to YAML

def to_dict(instance: Any) -> dict:
    """Plain nested dict of a config (tuples -> lists, Paths -> str): YAML/JSON-safe."""
    if not is_instance(instance):
        raise TypeError(f"to_dict needs a dataclass instance, got {type(instance).__name__}")
    return to_plain(instance)


def dump_yaml(instance: Any) -> str:
    """The resolved config as YAML text (field order kept)."""
    return yaml.safe_dump(to_dict(instance), sort_keys=False, default_flow_style=False, allow_unicode=True)


def save_config(instance: Any, path: str | Path, header: str | None = None) -> Path:
    """Write the resolved config atomically as YAML; ``header`` lines become ``#`` comments."""
    text = dump_yaml(instance)
    if header:
        text = "".join(f"# {line}\n" for line in header.splitlines()) + text
    atomic_write_text(path, text)
    return Path(path)
