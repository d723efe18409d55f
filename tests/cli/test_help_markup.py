"""Help texts reach the terminal as written: rich reads `[word]` as markup and drops it
(`phasegrid refine --help` said "Default: the spec's ."), so every spec section a help
text names must appear in the rendered help."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from pipeline.cli import app

SECTION = re.compile(r"\\?\[([a-z_]+)\]")  # [refine], \[refine]
BOX = re.compile("[\u2500-\u257f]")  # rich's panel borders


def words_of(help_text: str) -> str:
    """The rendered help as one line of words, panel borders and wrapping removed."""
    return " ".join(BOX.sub(" ", help_text).split())


def commands() -> list[tuple[list[str], typer.core.TyperCommand]]:
    """(words, click command) of every leaf command."""
    found, todo = [], [([], typer.main.get_command(app))]
    while todo:
        words, command = todo.pop()
        subcommands = getattr(command, "commands", None)
        if subcommands:
            todo += [([*words, name], sub) for name, sub in subcommands.items()]
        else:
            found.append((words, command))
    return found


def written_sections(command) -> set[str]:
    texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    return {m for text in texts for m in SECTION.findall(text)}


def test_refine_help_names_the_spec_section():
    result = CliRunner().invoke(app, ["refine", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = words_of(result.stdout)
    assert "Default: the spec's [refine]." in text
    assert "spec's ." not in text and "\\[" not in text


@pytest.mark.parametrize("words, command", commands(), ids=[" ".join(w) for w, _ in commands()])
def test_every_section_a_help_text_names_is_shown(words, command):
    sections = written_sections(command)
    result = CliRunner().invoke(app, [*words, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for section in sections:
        assert f"[{section}]" in result.stdout, (words, section)
    assert "\\[" not in result.stdout


def test_the_check_sees_the_sections_it_guards():
    """Guards the test itself: refine, run and compact name sections in their help."""
    named = {" ".join(words): written_sections(c) for words, c in commands()}
    assert named["refine"] == {"refine"} and named["run"] == {"refine"}
    assert named["compact"] == {"resources"}
