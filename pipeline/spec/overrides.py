"""`phasegrid run SPEC --set section.key=value`: command-line overrides of a spec's keys.

The value is read as a TOML value (`150`, `1e-3`, `true`, `[8, 16]`, `"mnist"`); a bare
word that is not TOML (`mnist`) is taken as a string. The overrides are part of the
campaign's spec: the resolved spec.json has them, and the stored spec.toml is the file's
text followed by a comment block naming them, which `with_overrides_applied` reads back
(so a spec.json rebuilt from spec.toml has them too).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.spec.errors import SpecError, problem

BLOCK = "# phasegrid run --set: overrides of the keys above, part of this campaign's spec"
LINE = "#   --set "


def parse_override(text: str, source: str) -> tuple[list[str], Any]:
    """`section.key=value` -> (["section", "key"], value). SpecError naming the fix."""
    key, sep, raw = text.partition("=")
    path = [part.strip() for part in key.split(".")]
    if not sep or not all(path):
        raise SpecError(
            [problem("", f"--set {text!r} is not KEY=VALUE (e.g. flow.max_steps=150)", source)],
            source,
        )
    try:
        value = tomllib.loads(f"value = {raw.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word: a string
    return path, value


def apply_overrides(
    raw: Mapping[str, Any], overrides: Sequence[str], source: str
) -> dict[str, Any]:
    """A copy of the TOML-shaped `raw` with each `section.key=value` set (sections made
    as needed; the spec's own validation then names unknown keys)."""
    result: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in raw.items()}
    for text in overrides:
        path, value = parse_override(text, source)
        table = result
        for part in path[:-1]:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise SpecError(
                    [problem(".".join(path), f"--set {text!r}: {part} is not a section", source)],
                    source,
                )
        table[path[-1]] = value
    return result


def overrides_block(overrides: Sequence[str]) -> str:
    """The comment block appended to the stored spec.toml ('' without overrides)."""
    if not overrides:
        return ""
    return "\n" + "\n".join([BLOCK, *(LINE + text for text in overrides)]) + "\n"


def stored_overrides(toml_text: str) -> list[str]:
    """The overrides recorded in a stored spec.toml by `overrides_block`."""
    lines = toml_text.splitlines()
    if BLOCK not in lines:
        return []
    return [line[len(LINE) :] for line in lines[lines.index(BLOCK) + 1 :] if line.startswith(LINE)]


def with_overrides_applied(toml_text: str, source: str) -> dict[str, Any]:
    """A stored spec.toml's table with its recorded overrides applied."""
    return apply_overrides(tomllib.loads(toml_text), stored_overrides(toml_text), source)
