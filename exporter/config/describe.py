"""Config validation errors in the words of the person who wrote the YAML.

pydantic says "Input should be a valid tuple" and "Extra inputs are not permitted"; whoever
wrote `server.prot: ninety` wants to read the option, the value they wrote and what would have
been right: `server.prot: unknown option; did you mean `port`?`.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

Loc = tuple[int | str, ...]

# What a value of each kind is called, for "... is not <kind>".
_KINDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a text",
    "tuple_type": "a list",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping of options",
    "model_attributes_type": "a mapping of options",
}
_BOUNDS = {
    "greater_than": "must be more than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "string_too_short": "must be at least {min_length} characters long",
    "string_too_long": "must be at most {max_length} characters long",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "string_pattern_mismatch": "must match {pattern}",
}


def location(loc: Loc) -> str:
    """An option's path as the file spells it: monitors[0].alert_interval."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def shown(value: Any) -> str:
    """A value as the user wrote it in YAML: "ninety", 1.5, true, a list, a mapping."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model whose options live at `loc` (list indexes and mapping keys skipped)."""
    current: type[BaseModel] = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part)
        if field is None:
            return None
        found = _inner_model(field.annotation)
        if found is None:
            return None
        current = found
    return current


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _unknown_option(model: type[BaseModel], loc: Loc) -> str:
    owner = _model_at(model, loc[:-1])
    names = list(owner.model_fields) if owner is not None else []
    close = difflib.get_close_matches(str(loc[-1]), names, n=1)
    if close:
        return f"unknown option; did you mean `{close[0]}`?"
    if names:
        return "unknown option; the options here are " + ", ".join(f"`{n}`" for n in names)
    return "unknown option"


def describe(error: ErrorDetails, model: type[BaseModel]) -> str:
    """One error as `path: what is wrong`, naming the value that was given."""
    kind, loc, ctx = error["type"], error["loc"], error.get("ctx") or {}
    value = error.get("input")
    where = location(loc)
    if kind == "extra_forbidden":
        return f"{where}: {_unknown_option(model, loc)}"
    if kind == "missing":
        return f"{where}: required, but not given"
    if kind in _KINDS:
        return f"{where}: {shown(value)} is not {_KINDS[kind]}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        return f"{where}: {shown(value)} is not one of {expected}"
    if kind in _BOUNDS:
        return f"{where}: {shown(value)} {_BOUNDS[kind].format(**ctx)}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}"


def describe_all(errors: Sequence[ErrorDetails], model: type[BaseModel]) -> list[str]:
    """Each mistake once: an error about an option is dropped when one inside it says more.

    (An unknown role in `roles: [pusher]` is one mistake; pydantic also reports the list as
    empty once the bad item is gone.)
    """
    locs = [tuple(e["loc"]) for e in errors]
    kept = [
        e
        for e, loc in zip(errors, locs, strict=True)
        if not any(len(other) > len(loc) and other[: len(loc)] == loc for other in locs)
    ]
    return [describe(e, model) for e in kept]
