"""`SpecError` and the translation of pydantic's errors into the house format:

    width must be a positive integer, got -3 (grid.width[2] in campaigns/x.toml)

Every problem names the field path as written in the TOML, the bad value and what to
write instead. pydantic's own wording never reaches the user.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from pipeline.spec import axes as grid
from pipeline.spec.schema import AXIS_HOMES, REQUIRED_HINTS, CampaignModel

# Error types that say the shape of a grid form is wrong rather than one of its numbers.
_FORM_SHAPE = {
    "tuple_type",
    "too_short",
    "too_long",
    "missing",
    "value_error",
    "model_type",
    "dict_type",
    "extra_forbidden",
}
_CONTAINER_WORDS: dict[type, str] = {dict: "a table", list: "an array", tuple: "an array"}


@dataclass(frozen=True)
class Problem:
    path: str  # field path as written in the TOML, e.g. "grid.width[2]"; "" = whole file
    message: str  # one sentence ending with "(<path> in <source>)"


class SpecError(ValueError):
    """A campaign spec that cannot run; `.problems` lists every problem found."""

    def __init__(self, problems: Sequence[Problem], source: str) -> None:
        self.problems = tuple(problems)
        self.source = source
        if len(self.problems) == 1:
            text = self.problems[0].message
        else:
            text = f"{len(self.problems)} problems in {source}:\n" + "\n".join(
                "  - " + p.message for p in self.problems
            )
        super().__init__(text)


def problem(path: str, text: str, source: str) -> Problem:
    """A Problem whose message ends with where it is: `(grid.width[2] in x.toml)`."""
    return Problem(path, f"{text} ({path} in {source})" if path else f"{text} ({source})")


def show(value: Any, limit: int = 60) -> str:
    """repr of a bad value, cut short: a user's typo, not a dump."""
    text = repr(value)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    kind = _CONTAINER_WORDS.get(type(value))
    return f"{text} ({kind})" if kind else text


def format_path(loc: Sequence[Any]) -> str:
    """('grid', 'width', '~list', 2) → 'grid.width[2]' (discriminator tags dropped)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith(grid.TAG):
            out += f".{part}" if out else str(part)
    return out


def _model_at(names: Sequence[str]) -> type[BaseModel] | None:
    """The section model reached by following `names` from the top of the campaign."""
    model: type[BaseModel] | None = CampaignModel
    for name in names:
        info = model.model_fields.get(name) if model else None
        if info is None:
            return None
        found = [
            a
            for a in (info.annotation, *typing.get_args(info.annotation))
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        model = found[0] if found else None
    return model


def _field_facts(names: Sequence[str]) -> tuple[str | None, tuple[str, ...]]:
    """(phrase, choices) of the field at `names`, e.g. ('a positive integer', ())."""
    model = _model_at(names[:-1])
    info = model.model_fields.get(names[-1]) if model and names else None
    if info is None:
        return None, ()
    literal = [a for a in _walk(info.annotation) if typing.get_origin(a) is Literal]
    return (
        info.description or grid.describe(info.annotation),
        typing.get_args(literal[0]) if literal else (),
    )


def _walk(annotation: Any) -> list:
    return [annotation] + [x for a in typing.get_args(annotation) for x in _walk(a)]


def _unknown_key(names: list[str], key: Any) -> str:
    section = names[0] if names else None
    if key in grid.AXES and section != "grid":
        return f"{key} is a grid axis: sweep it in [grid] as {key} = [...]" + (
            f" (or fix it in [{AXIS_HOMES[key]}])" if key in AXIS_HOMES else ""
        )
    model = _model_at(names)
    valid = sorted(model.model_fields) if model else [names[-1]] if names else []
    where = f"in [{'.'.join(names)}]" if names else "at the top level"
    guess = difflib.get_close_matches(str(key), valid, n=1)
    return (
        f"unknown key {show(key)} {where}"
        + (f" (did you mean {guess[0]!r}?)" if guess else "")
        + f"; valid keys: {', '.join(valid)}"
    )


def _axis_form(names: list[str], value: Any, expected: str) -> str:
    name = names[-1]
    if isinstance(value, (dict, list, tuple)):
        return f"grid axis {name} must be {expected}, got {show(value)}"
    text = (
        f"grid axis {name} must be a list, got the single value {show(value)}: "
        f"write {name} = [{show(value)}]"
    )
    if name in AXIS_HOMES:
        text += f", or fix it in [{AXIS_HOMES[name]}] as {name} = {show(value)}"
    return text


def _form_message(
    err: Mapping[str, Any], axis_name: str, form: type[grid.Form], indices: list[int]
) -> str:
    """Message for an error inside {range = ...}, {logspace = ...} or {geomspace = ...}."""
    kind = err["type"]
    if kind == "value_error":
        return str(err["ctx"]["error"])
    if kind == "extra_forbidden":
        return (
            f"unknown key {show(err['loc'][-1])} in grid axis {axis_name}: a table there "
            f"must be {form.syntax}"
        )
    if kind in _FORM_SHAPE or not indices or indices[-1] >= len(form.members):
        return f"grid axis {axis_name} {form.key} must be {form.syntax}, got {show(err['input'])}"
    member = form.members[indices[-1]]
    exponent = grid.EXPONENT_RULE
    phrase = {
        "n": "a positive integer",
        "start_exp": exponent,
        "stop_exp": exponent,
        "stop": "an integer" if form.key == "range" else None,
    }.get(member)
    phrase = phrase or _field_facts(["grid", axis_name])[0]
    return f"{axis_name} {form.key} {member} must be {phrase}, got {show(err['input'])}"


def _axis_list_message(err: Mapping[str, Any], name: str) -> str:
    if err["type"] == "value_error":
        return f"grid axis {name} has {err['ctx']['error']}"
    return f"grid axis {name} must be a non-empty list, got {show(err['input'])}"


def translate(err: Mapping[str, Any], source: str) -> Problem:
    """One pydantic error (an item of `ValidationError.errors()`) as a house-style Problem."""
    tags = [str(p)[len(grid.TAG) :] for p in err["loc"] if str(p).startswith(grid.TAG)]
    loc = [p for p in err["loc"] if not str(p).startswith(grid.TAG)]
    names = [str(p) for p in loc if not isinstance(p, int)]
    indices = [p for p in loc if isinstance(p, int)]
    path, kind = format_path(loc), err["type"]
    if tags and tags[0] in grid.FORMS:
        return problem(path, _form_message(err, names[1], grid.FORMS[tags[0]], indices), source)
    if kind == "extra_forbidden":
        sections = [str(p) for p in loc[:-1] if not isinstance(p, int)]
        return problem(path, _unknown_key(sections, loc[-1]), source)
    if kind == "missing" and len(names) <= 2:
        hint = REQUIRED_HINTS.get(path, f"add {names[-1]} = <{_field_facts(names)[0]}>")
        return problem(path, f"{path} is required: {hint}", source)
    if kind == "axis_form":
        return problem(path, _axis_form(names, err["input"], err["msg"]), source)
    if len(names) == 2 and names[0] == "grid" and not indices:
        return problem(path, _axis_list_message(err, names[1]), source)
    if kind in ("value_error", "assertion_error"):
        return problem(path, str(err["ctx"]["error"]), source)
    if kind in ("model_type", "dict_type"):
        return problem(
            path,
            f"[{path}] must be a table of keys ([{path}] followed by "
            f"key = value lines), got {show(err['input'])}",
            source,
        )
    phrase, choices = _field_facts(names)
    text = (
        f"{names[-1] if names else 'spec'} must be {phrase or _pydantic_phrase(err)}, "
        f"got {show(err['input'])}"
    )
    guess = difflib.get_close_matches(str(err["input"]), choices, n=1) if choices else []
    return problem(path, text + (f"; did you mean {guess[0]!r}?" if guess else ""), source)


def _pydantic_phrase(err: Mapping[str, Any]) -> str:
    """Fallback: 'Input should be greater than 0' → 'greater than 0'."""
    msg = str(err.get("msg", "valid"))
    return msg.removeprefix("Input should be ").removeprefix("Value error, ")
