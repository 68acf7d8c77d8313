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
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import functools
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, TypeVar, Union

import yaml

from .errors import SemimtrError, UsageError
from .fsutil import atomic_write_text

T = TypeVar("T")

_MISSING = dataclasses.MISSING
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_KEY_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$|^\d+$")


class ConfigError(SemimtrError):
    """A recipe (or config mapping) that does not fit its schema."""


class OverrideError(ConfigError, UsageError):
    """A bad ``--set key=value`` argument (exit code 2)."""


class _Invalid(Exception):
    """Internal: a conversion failure, turned into a ConfigError with the source prefix."""


class _UnknownKey(_Invalid):
    """Internal: key ``part`` is not a field of ``cls`` (at dotted path ``key``)."""

    def __init__(self, cls: type, part: str, key: str):
        super().__init__(f"unknown key '{_join(key, part)}'")
        self.cls, self.part, self.key = cls, part, key

    def describe(self, root: type) -> str:
        return _unknown_key_message(self.cls, self.part, self.key, root)


# --------------------------------------------------------------------------- type helpers

@functools.lru_cache(maxsize=None)
def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


@functools.lru_cache(maxsize=None)
def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _strip_optional(tp: Any) -> Any:
    """``Optional[X]`` -> ``X`` (only for a two-member union with None)."""
    if _is_union(tp):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def type_name(tp: Any) -> str:
    """Readable name of a field type, for messages (``list[int]``, ``float or null``...)."""
    if tp is Any:
        return "any"
    if tp is type(None):
        return "null"
    if _is_union(tp):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is not None:
        args = typing.get_args(tp)
        base = getattr(origin, "__name__", str(origin))
        return f"{base}[{', '.join('...' if a is Ellipsis else type_name(a) for a in args)}]" if args else base
    if dataclasses.is_dataclass(tp):
        return f"mapping ({tp.__name__})"
    return getattr(tp, "__name__", str(tp))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _join(key: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{key}[{part}]"
    return f"{key}.{part}" if key else part


# --------------------------------------------------------------------------- conversion

def _convert(value: Any, tp: Any, key: str, strict: bool = False) -> Any:
    """Check/coerce ``value`` to ``tp``; raise _Invalid naming ``key`` on failure."""
    if tp is Any or tp is object:
        return value
    if _is_union(tp):
        return _convert_union(value, tp, key)
    origin = typing.get_origin(tp)
    if origin is Literal:
        for choice in typing.get_args(tp):
            if value == choice and type(value) is type(choice):
                return choice
        raise _Invalid(f"'{key}' must be {type_name(tp)}, got {_show(value)}")
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = to_dict(value)
        if not isinstance(value, Mapping):
            raise _Invalid(f"'{key}' must be {type_name(tp)}, got {_show(value)} ({type(value).__name__})")
        return _build(tp, value, key)
    if origin in (list, collections.abc.Sequence) or tp is list:
        return _convert_list(value, tp, key, strict)
    if origin is tuple or tp is tuple:
        return _convert_tuple(value, tp, key)
    if origin in (dict, collections.abc.Mapping) or tp is dict:
        return _convert_dict(value, tp, key)
    if tp is type(None):
        if value is None:
            return None
        raise _Invalid(f"'{key}' must be null, got {_show(value)}")
    if tp in (bool, int, float, str, Path):
        return _convert_scalar(value, tp, key, strict)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _Invalid(f"'{key}': unsupported field type {type_name(tp)}")


def _convert_scalar(value: Any, tp: type, key: str, strict: bool) -> Any:
    fail = _Invalid(f"'{key}' must be {type_name(tp)}, got {_show(value)} ({type(value).__name__})")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail
    if isinstance(value, bool) or value is None:
        raise fail
    if tp is float:
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str) and not strict:
            try:
                return float(value.strip())
            except ValueError:
                raise fail from None
        raise fail
    if tp is int:
        if isinstance(value, int):
            return value
        if strict:
            raise fail
        number = value
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise fail from None
        if isinstance(number, float) and math.isfinite(number) and number.is_integer():
            return int(number)
        raise fail
    if tp is str:
        if isinstance(value, str):
            return value
        if not strict and isinstance(value, (int, float)):
            return str(value)
        raise fail
    if tp is Path:
        if isinstance(value, Path):
            return value
        if isinstance(value, str):
            return Path(value)
        raise fail
    raise fail  # pragma: no cover


def _convert_union(value: Any, tp: Any, key: str) -> Any:
    args = typing.get_args(tp)
    if value is None:
        if type(None) in args:
            return None
    else:
        for strict in (True, False):  # exact-type members first, coercions second
            for arg in args:
                if arg is type(None):
                    continue
                try:
                    return _convert(value, arg, key, strict=strict)
                except _Invalid as err:
                    if _is_nested_error(err, key):
                        raise
    raise _Invalid(f"'{key}' must be {type_name(tp)}, got {_show(value)} ({type(value).__name__})")


def _is_nested_error(err: _Invalid, key: str) -> bool:
    """True if the failure is about a sub-key (a member matched the shape; report the detail)."""
    text = str(err)
    return not text.startswith(f"'{key}' must be") and not text.startswith(f"'{key}': unsupported")


def _convert_list(value: Any, tp: Any, key: str, strict: bool) -> list:
    args = typing.get_args(tp)
    item_tp = args[0] if args else Any
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list):
        if strict or isinstance(value, Mapping) or value is None:
            raise _Invalid(f"'{key}' must be {type_name(tp)}, got {_show(value)} ({type(value).__name__})")
        value = [value]
    return [_convert(item, item_tp, _join(key, i)) for i, item in enumerate(value)]


def _convert_tuple(value: Any, tp: Any, key: str) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise _Invalid(f"'{key}' must be {type_name(tp)}, got {_show(value)} ({type(value).__name__})")
    args = typing.get_args(tp)
    if not args:
        return tuple(value)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_convert(item, args[0], _join(key, i)) for i, item in enumerate(value))
    if len(value) != len(args):
        raise _Invalid(f"'{key}' must have {len(args)} items ({type_name(tp)}), got {len(value)}: {_show(value)}")
    return tuple(_convert(item, a, _join(key, i)) for i, (item, a) in enumerate(zip(value, args)))


def _convert_dict(value: Any, tp: Any, key: str) -> dict:
    if not isinstance(value, Mapping):
        raise _Invalid(f"'{key}' must be {type_name(tp)}, got {_show(value)} ({type(value).__name__})")
    args = typing.get_args(tp)
    key_tp, val_tp = args if args else (Any, Any)
    out = {}
    for k, v in value.items():
        ck = _convert(k, key_tp, f"{key} key")
        out[ck] = _convert(v, val_tp, _join(key, str(k)))
    return out


def _unknown_key_message(cls: type, part: str, key: str, root: type) -> str:
    full = _join(key, part)
    names = list(_fields(cls))
    close = difflib.get_close_matches(part, names, n=1, cutoff=0.6)
    hint = _join(key, close[0]) if close else None
    if hint is None:
        same_leaf = [p for p in _schema_paths(root) if p.rsplit(".", 1)[-1] == part]
        close_paths = difflib.get_close_matches(full, _schema_paths(root), n=1, cutoff=0.75)
        hint = (same_leaf or close_paths or [None])[0]
    suffix = f" (did you mean '{hint}'?)" if hint else ""
    return f"unknown key '{full}'{suffix}"


def _build(cls: type, data: Mapping, key: str) -> Any:
    types_ = _field_types(cls)
    fields = _fields(cls)
    kwargs = {}
    for raw_name, raw_value in data.items():
        name = str(raw_name)
        if name not in types_:
            raise _UnknownKey(cls, name, key)
        kwargs[name] = _convert(raw_value, types_[name], _join(key, name))
    missing = [n for n, f in fields.items()
               if n not in kwargs and f.default is _MISSING and f.default_factory is _MISSING]
    if missing:
        raise _Invalid(f"missing key '{_join(key, missing[0])}' ({type_name(types_[missing[0]])})")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        where = f"'{key}': " if key else ""
        raise _Invalid(f"{where}{err}") from None


@functools.lru_cache(maxsize=None)
def _schema_paths_cached(cls: type) -> tuple[str, ...]:
    paths: list[str] = []

    def walk(tp: Any, prefix: str, depth: int) -> None:
        tp = _strip_optional(tp)
        if dataclasses.is_dataclass(tp) and depth < 8:
            for name, sub in _field_types(tp).items():
                path = _join(prefix, name)
                paths.append(path)
                walk(sub, path, depth + 1)

    walk(cls, "", 0)
    return tuple(paths)


def _schema_paths(cls: type) -> list[str]:
    return list(_schema_paths_cached(cls))


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
        return _build(cls, data, "")
    except _UnknownKey as err:
        raise ConfigError(f"{source}: {err.describe(cls)}") from None
    except _Invalid as err:
        raise ConfigError(f"{source}: {err}") from None


# --------------------------------------------------------------------------- YAML and overrides

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


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=3e-4"`` -> (["optim", "lr"], "3e-4" parsed by yaml.safe_load).

    Raises:
        OverrideError: no ``=``, an empty or malformed key, or a value that is not valid YAML.
    """
    if "=" not in text:
        raise OverrideError(f"--set {text!r}: expected KEY=VALUE, e.g. --set optim.lr=3e-4")
    key, _, raw = text.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not key or not all(_KEY_PART.match(p) for p in parts):
        raise OverrideError(f"--set {text!r}: malformed key {key!r} (expected dotted names like optim.lr)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise OverrideError(f"--set {text!r}: value is not valid YAML ({problem})") from None
    return parts, value


def _default_raw(f: dataclasses.Field) -> Any:
    if f.default is not _MISSING:
        return _to_plain(f.default)
    if f.default_factory is not _MISSING:
        return _to_plain(f.default_factory())
    return _MISSING


def _is_container(tp: Any) -> bool:
    tp = _strip_optional(tp)
    origin = typing.get_origin(tp)
    return (dataclasses.is_dataclass(tp) or tp in (list, tuple, dict)
            or origin in (list, tuple, dict, collections.abc.Sequence, collections.abc.Mapping))


def apply_override(cls: type, data: dict, text: str) -> None:
    """Apply one ``--set KEY=VALUE`` to the raw mapping ``data`` (in place), checking the key
    against the schema ``cls`` and the value against the field's type."""
    parts, value = parse_override(text)
    where = f"--set {text}"
    node: Any = data
    tp: Any = cls
    key = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        tp = _strip_optional(tp)
        origin = typing.get_origin(tp)
        if dataclasses.is_dataclass(tp):
            types_ = _field_types(tp)
            if part not in types_:
                raise OverrideError(f"{where}: {_unknown_key_message(tp, part, key, cls)}")
            child_tp = types_[part]
            field = _fields(tp)[part]
            slot: Any = part
        elif origin in (dict, collections.abc.Mapping) or tp is dict:
            args = typing.get_args(tp)
            child_tp = args[1] if args else Any
            field = None
            slot = part
        elif origin in (list, tuple, collections.abc.Sequence) or tp in (list, tuple):
            if not part.isdigit():
                raise OverrideError(f"{where}: '{key}' is a list; use an index ('{key}.0') or set the whole list")
            index = int(part)
            if not isinstance(node, list) or index >= len(node):
                size = len(node) if isinstance(node, list) else 0
                raise OverrideError(f"{where}: index {index} out of range for '{key}' ({size} items)")
            args = typing.get_args(tp)
            if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
                child_tp = args[index] if index < len(args) else Any
            else:
                child_tp = args[0] if args else Any
            field = None
            slot = index
        else:
            raise OverrideError(f"{where}: '{key}' is {type_name(tp)} and has no sub-key '{part}'")
        key = _join(key, slot) if isinstance(slot, int) else _join(key, part)

        if last:
            try:
                _convert(value, child_tp, key)
            except _UnknownKey as err:
                raise OverrideError(f"{where}: {err.describe(cls)}") from None
            except _Invalid as err:
                raise OverrideError(f"{where}: {err}") from None
            node[slot] = value
            return
        if not _is_container(child_tp):
            raise OverrideError(f"{where}: '{key}' is {type_name(child_tp)} and has no sub-key '{parts[i + 1]}'")
        exists = (slot in node) if isinstance(node, dict) else True
        child = node[slot] if exists else _MISSING
        if child is _MISSING or child is None:
            child = _default_raw(field) if field is not None else _MISSING
            if child is _MISSING or child is None:
                child = {}
            node[slot] = child
        if isinstance(child, tuple):
            child = list(child)
            node[slot] = child
        if not isinstance(child, (dict, list)):
            raise OverrideError(f"{where}: '{key}' holds {_show(child)}, not a mapping")
        node = child
        tp = child_tp


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
    elif dataclasses.is_dataclass(source) and not isinstance(source, type):
        name, data = "<config>", to_dict(source)
    elif isinstance(source, Mapping):
        name, data = "<config>", _to_plain(source)
    else:
        raise TypeError(f"cannot load a config from {type(source).__name__}")
    if overrides:
        data = dict(data)
        for text in overrides:
            apply_override(cls, data, text)
    return from_dict(cls, data, source=name)


# --------------------------------------------------------------------------- back to YAML

def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def to_dict(instance: Any) -> dict:
    """Plain nested dict of a config (tuples -> lists, Paths -> str): YAML/JSON-safe."""
    if not (dataclasses.is_dataclass(instance) and not isinstance(instance, type)):
        raise TypeError(f"to_dict needs a dataclass instance, got {type(instance).__name__}")
    return _to_plain(instance)


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
