"""The type-check and coercion engine behind :mod:`semimtr_cli.core.config.loader`.

Given a plain value (from YAML, a ``--set`` argument or a checkpoint) and a field type, either
return the value in that type or raise :class:`Invalid` with a one-line reason that names the
dotted key. Dataclasses are built field by field (:func:`build`); an unknown field raises
:class:`UnknownKey`, which can describe itself with a "did you mean" hint from the schema.

Nothing here knows about files or the CLI: ``config.py`` adds the source name in front of
the reason and ``config_overrides.py`` adds the ``--set`` argument.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import functools
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Union

from semimtr_cli.core.errors import SemimtrError

MISSING = dataclasses.MISSING


class ConfigError(SemimtrError):
    """A recipe (or config mapping) that does not fit its schema."""


class Invalid(Exception):
    """A value that does not fit its field; the text starts with the quoted dotted key."""


class UnknownKey(Invalid):
    """Key ``part`` is not a field of dataclass ``cls`` (reached at dotted path ``key``)."""

    def __init__(self, cls: type, part: str, key: str):
        super().__init__(f"unknown key '{join_key(key, part)}'")
        self.cls, self.part, self.key = cls, part, key

    def describe(self, root: type) -> str:
        """The message with the closest valid key of schema ``root`` as a hint."""
        return unknown_key_message(self.cls, self.part, self.key, root)


# ------------------------------------------------------------------------------- schema facts

@functools.lru_cache(maxsize=None)
def field_types(cls: type) -> dict[str, Any]:
    """Resolved type of every ``__init__`` field of dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


@functools.lru_cache(maxsize=None)
def init_fields(cls: type) -> dict[str, dataclasses.Field]:
    """The ``dataclasses.Field`` of every ``__init__`` field of ``cls``, by name."""
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def strip_optional(tp: Any) -> Any:
    """``Optional[X]`` -> ``X`` (only a two-member union with None is unwrapped)."""
    if is_union(tp):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return tp


def is_sequence_type(tp: Any) -> bool:
    return tp in (list, tuple) or typing.get_origin(tp) in (list, tuple, collections.abc.Sequence)


def is_mapping_type(tp: Any) -> bool:
    return tp is dict or typing.get_origin(tp) in (dict, collections.abc.Mapping)


def is_container(tp: Any) -> bool:
    """True for types that have sub-keys: dataclasses, lists, tuples, dicts (also Optional)."""
    tp = strip_optional(tp)
    return dataclasses.is_dataclass(tp) or is_sequence_type(tp) or is_mapping_type(tp)


def is_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def type_name(tp: Any) -> str:
    """Readable name of a field type, for messages (``list[int]``, ``float or null``...)."""
    if tp is Any:
        return "any"
    if tp is type(None):
        return "null"
    if is_union(tp):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is not None:
        base = getattr(origin, "__name__", str(origin))
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in typing.get_args(tp))
        return f"{base}[{inner}]" if inner else base
    if dataclasses.is_dataclass(tp):
        return f"mapping ({tp.__name__})"
    return getattr(tp, "__name__", str(tp))


def show_value(value: Any) -> str:
    """``repr`` shortened to 60 characters, for messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def join_key(key: str, part: str | int) -> str:
    """Dotted path of a child: ``join_key("optim", "lr")`` -> ``optim.lr``; ints index lists."""
    if isinstance(part, int):
        return f"{key}[{part}]"
    return f"{key}.{part}" if key else part


def to_plain(value: Any) -> Any:
    """Plain nested data (dataclasses -> dicts, tuples -> lists, Paths -> str)."""
    if is_instance(value):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


@functools.lru_cache(maxsize=None)
def schema_paths(cls: type) -> tuple[str, ...]:
    """Every dotted key of the schema ``cls`` (nested dataclasses, 8 levels at most)."""
    found: list[str] = []

    def walk(tp: Any, prefix: str, depth: int) -> None:
        tp = strip_optional(tp)
        if not dataclasses.is_dataclass(tp) or depth >= 8:
            return
        for name, sub in field_types(tp).items():
            path = join_key(prefix, name)
            found.append(path)
            walk(sub, path, depth + 1)

    walk(cls, "", 0)
    return tuple(found)


def unknown_key_message(cls: type, part: str, key: str, root: type) -> str:
    """``unknown key 'a.b' (did you mean 'a.c'?)``: a close sibling first, else the same leaf
    name or a close full path anywhere in ``root``."""
    full = join_key(key, part)
    sibling = difflib.get_close_matches(part, list(init_fields(cls)), n=1, cutoff=0.6)
    hint = join_key(key, sibling[0]) if sibling else None
    if hint is None:
        paths = list(schema_paths(root))
        same_leaf = [p for p in paths if p.rsplit(".", 1)[-1] == part]
        close = difflib.get_close_matches(full, paths, n=1, cutoff=0.75)
        hint = (same_leaf or close or [None])[0]
    return f"unknown key '{full}'" + (f" (did you mean '{hint}'?)" if hint else "")


# ------------------------------------------------------------------------------- conversion

def _mismatch(key: str, tp: Any, value: Any) -> Invalid:
    return Invalid(f"'{key}' must be {type_name(tp)}, got {show_value(value)} ({type(value).__name__})")


def convert(value: Any, tp: Any, key: str, strict: bool = False) -> Any:
    """``value`` checked and coerced to ``tp``; :class:`Invalid` naming ``key`` otherwise.

    ``strict`` turns the coercions off (used to try union members exact-type first).
    """
    if tp is Any or tp is object:
        return value
    if is_union(tp):
        return _convert_union(value, tp, key)
    if typing.get_origin(tp) is Literal:
        for choice in typing.get_args(tp):
            if value == choice and type(value) is type(choice):
                return choice
        raise Invalid(f"'{key}' must be {type_name(tp)}, got {show_value(value)}")
    if dataclasses.is_dataclass(tp):
        if is_instance(value):
            value = to_plain(value)
        if not isinstance(value, Mapping):
            raise _mismatch(key, tp, value)
        return build(tp, value, key)
    if is_sequence_type(tp):
        if tp is tuple or typing.get_origin(tp) is tuple:
            return _convert_tuple(value, tp, key)
        return _convert_list(value, tp, key, strict)
    if is_mapping_type(tp):
        return _convert_dict(value, tp, key)
    if tp is type(None):
        if value is None:
            return None
        raise Invalid(f"'{key}' must be null, got {show_value(value)}")
    if tp in (bool, int, float, str, Path):
        return _convert_scalar(value, tp, key, strict)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise Invalid(f"'{key}': unsupported field type {type_name(tp)}")


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


def _convert_scalar(value: Any, tp: type, key: str, strict: bool) -> Any:
    """bool only from bool; float from numbers and numeric text (``1e-4``); int from integral
    numbers or text (``1e4``); str from text or numbers; Path from text."""
    if isinstance(value, tp) and not (tp is not bool and isinstance(value, bool)):
        return float(value) if tp is float else value
    if isinstance(value, bool) or value is None or tp is bool:
        raise _mismatch(key, tp, value)
    if tp is float:
        number = value if isinstance(value, int) else None
        if number is None and isinstance(value, str) and not strict:
            number = _number(value)
        if number is not None:
            return float(number)
    elif tp is int and not strict and isinstance(value, (float, str)):
        number = _number(value) if isinstance(value, str) else value
        if number is not None and math.isfinite(number) and number.is_integer():
            return int(number)
    elif tp is str and not strict and isinstance(value, (int, float)):
        return str(value)
    elif tp is Path and isinstance(value, str):
        return Path(value)
    raise _mismatch(key, tp, value)


def _convert_union(value: Any, tp: Any, key: str) -> Any:
    members = [a for a in typing.get_args(tp) if a is not type(None)]
    if value is None:
        if len(members) < len(typing.get_args(tp)):
            return None
        raise _mismatch(key, tp, value)
    for strict in (True, False):  # exact-type members first, coercions second
        for member in members:
            try:
                return convert(value, member, key, strict=strict)
            except Invalid as err:
                if _about_a_sub_key(err, key):  # the shape matched: report the detail
                    raise
    raise _mismatch(key, tp, value)


def _about_a_sub_key(err: Invalid, key: str) -> bool:
    text = str(err)
    return not (text.startswith(f"'{key}' must be") or text.startswith(f"'{key}': unsupported"))


def _convert_list(value: Any, tp: Any, key: str, strict: bool) -> list:
    args = typing.get_args(tp)
    item_tp = args[0] if args else Any
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list):
        if strict or isinstance(value, Mapping) or value is None:
            raise _mismatch(key, tp, value)
        value = [value]  # a single scalar stands for a one-item list
    return [convert(item, item_tp, join_key(key, i)) for i, item in enumerate(value)]


def _convert_tuple(value: Any, tp: Any, key: str) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise _mismatch(key, tp, value)
    args = typing.get_args(tp)
    if not args:
        return tuple(value)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(convert(item, args[0], join_key(key, i)) for i, item in enumerate(value))
    if len(value) != len(args):
        raise Invalid(f"'{key}' must have {len(args)} items ({type_name(tp)}), got {len(value)}: {show_value(value)}")
    return tuple(convert(item, a, join_key(key, i)) for i, (item, a) in enumerate(zip(value, args)))


def _convert_dict(value: Any, tp: Any, key: str) -> dict:
    if not isinstance(value, Mapping):
        raise _mismatch(key, tp, value)
    key_tp, val_tp = typing.get_args(tp) or (Any, Any)
    return {convert(k, key_tp, f"{key} key"): convert(v, val_tp, join_key(key, str(k))) for k, v in value.items()}


def build(cls: type, data: Mapping, key: str) -> Any:
    """Dataclass ``cls`` from mapping ``data`` found at dotted path ``key`` ("" = the top)."""
    types_ = field_types(cls)
    kwargs = {}
    for raw_name, raw_value in data.items():
        name = str(raw_name)
        if name not in types_:
            raise UnknownKey(cls, name, key)
        kwargs[name] = convert(raw_value, types_[name], join_key(key, name))
    for name, f in init_fields(cls).items():
        if name not in kwargs and f.default is MISSING and f.default_factory is MISSING:
            raise Invalid(f"missing key '{join_key(key, name)}' ({type_name(types_[name])})")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:  # __post_init__ checks
        where = f"'{key}': " if key else ""
        raise Invalid(f"{where}{err}") from None
