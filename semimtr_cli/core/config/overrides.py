"""``--set KEY=VALUE`` overrides: parse one, walk the schema along its dotted key, check it.

An override is applied to the raw mapping *before* the config is built, so it may supply keys
the file lacks (the walk fills the missing parents from the schema defaults). The value is
parsed as YAML and checked against the field's type at once, so a bad value is reported with
the override that brought it, not with the file.

Messages name the parameter through :func:`semimtr_cli.core.errors.option`; the CLI shows it as
``--set``.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any

import yaml

from semimtr_cli.core.config.types import (
    MISSING, ConfigError, Invalid, UnknownKey, convert, field_types, init_fields, is_container, is_mapping_type,
    is_sequence_type, join_key, show_value, strip_optional, to_plain, type_name, unknown_key_message,
)
from semimtr_cli.core.errors import UsageError, option

_KEY_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$|^\d+$")
SET = option("set")


class OverrideError(ConfigError, UsageError):
    """A bad ``--set key=value`` argument (exit code 2)."""


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=3e-4"`` -> (["optim", "lr"], "3e-4" parsed by yaml.safe_load).

    Raises:
        OverrideError: no ``=``, an empty or malformed key, or a value that is not valid YAML.
    """
    if "=" not in text:
        raise OverrideError(f"{SET} {text!r}: expected KEY=VALUE, e.g. {SET} optim.lr=3e-4")
    key, _, raw = text.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not key or not all(_KEY_PART.match(p) for p in parts):
        raise OverrideError(f"{SET} {text!r}: malformed key {key!r} (expected dotted names like optim.lr)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise OverrideError(f"{SET} {text!r}: value is not valid YAML ({problem})") from None
    return parts, value


@dataclasses.dataclass
class _Step:
    """One dotted-key part resolved against the schema: where it goes and what it holds."""

    slot: str | int               # the dict key or list index in the raw mapping
    tp: Any                       # the type of the value found there
    field: dataclasses.Field | None  # the dataclass field (for its default), if any


def _step(root: type, tp: Any, node: Any, part: str, key: str, where: str) -> _Step:
    """Resolve ``part`` below the value of type ``tp`` (raw value ``node``) at path ``key``."""
    tp = strip_optional(tp)
    if dataclasses.is_dataclass(tp):
        types_ = field_types(tp)
        if part not in types_:
            raise OverrideError(f"{where}: {unknown_key_message(tp, part, key, root)}")
        return _Step(part, types_[part], init_fields(tp)[part])
    args = typing.get_args(tp)
    if is_mapping_type(tp):
        return _Step(part, args[1] if args else Any, None)
    if is_sequence_type(tp):
        if not part.isdigit():
            raise OverrideError(f"{where}: '{key}' is a list; use an index ('{key}.0') or set the whole list")
        index = int(part)
        if not isinstance(node, list) or index >= len(node):
            size = len(node) if isinstance(node, list) else 0
            raise OverrideError(f"{where}: index {index} out of range for '{key}' ({size} items)")
        fixed_tuple = typing.get_origin(tp) is tuple and args and not (len(args) == 2 and args[1] is Ellipsis)
        if fixed_tuple:
            return _Step(index, args[index] if index < len(args) else Any, None)
        return _Step(index, args[0] if args else Any, None)
    raise OverrideError(f"{where}: '{key}' is {type_name(tp)} and has no sub-key '{part}'")


def _default_raw(field: dataclasses.Field | None) -> Any:
    """The plain default of a dataclass field (MISSING without one)."""
    if field is None:
        return MISSING
    if field.default is not MISSING:
        return to_plain(field.default)
    if field.default_factory is not MISSING:
        return to_plain(field.default_factory())
    return MISSING


def _descend(node: Any, step: _Step, key: str, where: str) -> dict | list:
    """The child container at ``step`` inside ``node``, created from the default if absent."""
    present = step.slot in node if isinstance(node, dict) else True
    child = node[step.slot] if present else None
    if child is None:
        child = _default_raw(step.field)
        if child is MISSING or child is None:
            child = {}
    if isinstance(child, tuple):
        child = list(child)
    node[step.slot] = child
    if not isinstance(child, (dict, list)):
        raise OverrideError(f"{where}: '{key}' holds {show_value(child)}, not a mapping")
    return child


def apply_override(cls: type, data: dict, text: str) -> None:
    """Apply one ``--set KEY=VALUE`` to the raw mapping ``data`` (in place), checking the key
    against the schema ``cls`` and the value against the field's type."""
    parts, value = parse_override(text)
    where = f"{SET} {text}"
    node: Any = data
    tp: Any = cls
    key = ""
    for i, part in enumerate(parts):
        step = _step(cls, tp, node, part, key, where)
        key = join_key(key, step.slot)
        if i == len(parts) - 1:
            try:
                convert(value, step.tp, key)
            except UnknownKey as err:
                raise OverrideError(f"{where}: {err.describe(cls)}") from None
            except Invalid as err:
                raise OverrideError(f"{where}: {err}") from None
            node[step.slot] = value
            return
        if not is_container(step.tp):
            raise OverrideError(f"{where}: '{key}' is {type_name(step.tp)} and has no sub-key '{parts[i + 1]}'")
        node = _descend(node, step, key, where)
        tp = step.tp
