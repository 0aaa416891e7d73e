"""``{placeholder}`` substitution in recipes, as zocalo's Dispatcher does it.

Every string of a recipe (dictionary keys, ``start`` payloads, queue names,
parameters) is a ``str.format`` template applied once, before the run starts:

- ``"{name}"`` and ``"{name[key]}"`` become the text of the parameter (with
  any format spec or ``!r``/``!s`` conversion honoured);
- a placeholder whose parameter is not defined is left as it is, spec and
  all, so a later stage (or a human reading the run) sees what was missing;
- a string that is exactly ``"{$REPLACE:name}"`` becomes a copy of the
  parameter's value, whatever its JSON type (``None`` when undefined);
- ``{{`` and ``}}`` are literal braces; substitution is a single pass.

Where zocalo crashes the whole Dispatcher (positional ``{}``, unbalanced
braces, an attribute of an undefined name), we raise
:class:`SubstitutionError` naming the offending text, so the caller can say
which step is wrong.
"""

import copy
import logging
import string
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

REPLACE_PREFIX = "{$REPLACE:"


class SubstitutionError(ValueError):
    """A template string that cannot be filled in; the message says why."""


class _Undefined(LookupError):
    """Internal: the first name of a field is not a parameter."""


_formatter = string.Formatter()


def _field_value(field_name: str, parameters: Mapping[str, Any]) -> Any:
    """The value of *field_name* (``a``, ``a[k]``, ``a.b``) in *parameters*.

    Raises :class:`_Undefined` when the first name is not a parameter.
    """
    head = _first_name(field_name)
    if not head or head.isdigit():
        raise SubstitutionError(
            f"positional field {{{field_name}}} is not allowed: "
            "placeholders must name a parameter"
        )
    if head not in parameters:
        raise _Undefined(head)
    try:
        value, _ = _formatter.get_field(field_name, (), parameters)
    except (KeyError, IndexError, AttributeError, TypeError) as error:
        raise SubstitutionError(
            f"cannot resolve {{{field_name}}}: {type(error).__name__}: {error}"
        ) from None
    return value


def _first_name(field_name: str) -> str:
    """``a`` for ``a``, ``a[k]``, ``a.b`` (the parameter a field starts from)."""
    for index, character in enumerate(field_name):
        if character in ".[":
            return field_name[:index]
    return field_name


def substitute_string(text: str, parameters: Mapping[str, Any]) -> Any:
    """*text* with its placeholders filled from *parameters* (see module doc).

    Returns a new string, or any value for a whole-string ``{$REPLACE:...}``.
    """
    if text.startswith(REPLACE_PREFIX) and text.endswith("}"):
        replaced_name = text[len(REPLACE_PREFIX) : -1]
        try:
            return copy.deepcopy(_field_value(replaced_name, parameters))
        except _Undefined:
            return None
    if REPLACE_PREFIX in text:
        raise SubstitutionError(
            f"{text!r}: {{$REPLACE:...}} must be the whole string, "
            "since it stands for a value of any type"
        )
    try:
        pieces = list(_formatter.parse(text))
    except ValueError as error:
        raise SubstitutionError(f"{text!r}: {error}") from None
    output: list[str] = []
    for literal, field_name, format_spec, conversion in pieces:
        # Literal braces come back unescaped; only an escaped pair may
        # surround a literal, so re-escaping is not needed for the result.
        output.append(literal)
        if field_name is None:
            continue
        try:
            value = _field_value(field_name, parameters)
        except _Undefined:
            output.append(_rebuild_field(field_name, format_spec, conversion))
            continue
        except SubstitutionError as error:
            raise SubstitutionError(f"{text!r}: {error}") from None
        try:
            # The spec may hold placeholders too; $REPLACE may make it a
            # non-string, which format_field refuses with a TypeError.
            spec = substitute_string(format_spec, parameters) if format_spec else ""
            value = _formatter.convert_field(value, conversion)
            output.append(_formatter.format_field(value, spec))
        except (ValueError, TypeError) as error:
            raise SubstitutionError(f"{text!r}: {error}") from None
    return "".join(output)


def _rebuild_field(
    field_name: str, format_spec: str | None, conversion: str | None
) -> str:
    """The original text of a placeholder that stays unsubstituted."""
    text = "{" + field_name
    if conversion:
        text += "!" + conversion
    if format_spec:
        text += ":" + format_spec
    return text + "}"


def substitute(structure: Any, parameters: Mapping[str, Any]) -> Any:
    """A deep copy of *structure* with every string substituted.

    Dictionary keys are substituted too (and must stay hashable: a key that
    ``$REPLACE`` turns into a list raises :class:`SubstitutionError`).
    """
    if isinstance(structure, str):
        return substitute_string(structure, parameters)
    if isinstance(structure, dict):
        result = {}
        for key, value in structure.items():
            new_key = substitute(key, parameters)
            try:
                hash(new_key)
            except TypeError:
                raise SubstitutionError(
                    f"key {key!r} becomes {new_key!r}, which cannot be a key"
                ) from None
            result[new_key] = substitute(value, parameters)
        return result
    if isinstance(structure, list):
        return [substitute(item, parameters) for item in structure]
    if isinstance(structure, tuple):
        return tuple(substitute(item, parameters) for item in structure)
    return copy.deepcopy(structure)
