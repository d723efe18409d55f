"""Shell completion (issue 13, case 9): `phasegrid completion SHELL` prints a script that
the shell accepts and that asks phasegrid itself for the completions."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from pipeline.cli import app


def cli(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env=env, prog_name="phasegrid")


def test_the_bash_script_names_phasegrid_and_its_complete_variable():
    result = cli("completion", "bash")
    assert result.exit_code == 0, result.output
    script = result.stdout
    assert script.strip()
    assert "complete -o default -F _phasegrid_completion phasegrid" in script
    assert "_PHASEGRID_COMPLETE=complete_bash" in script


@pytest.mark.parametrize("shell, needle", [("zsh", "compdef"), ("fish", "complete --command")])
def test_zsh_and_fish_scripts_name_phasegrid(shell, needle):
    result = cli("completion", shell)
    assert result.exit_code == 0, result.output
    assert needle in result.stdout and "phasegrid" in result.stdout


def test_an_unknown_shell_is_refused_naming_the_choices():
    result = cli("completion", "tcsh")
    assert result.exit_code == 2
    assert "bash" in result.output and "tcsh" in result.output


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash here")
def test_bash_accepts_the_script(tmp_path):
    script = tmp_path / "phasegrid.bash"
    script.write_text(cli("completion", "bash").stdout)
    shown = subprocess.run(
        ["bash", "-c", f"source {script} && complete -p phasegrid"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "complete -o default -F _phasegrid_completion phasegrid"


def test_the_protocol_the_script_speaks_completes_commands_and_options():
    """What bash runs on <TAB>: the completion variable set, the words so far."""
    words = {"_PHASEGRID_COMPLETE": "complete_bash", "COMP_WORDS": "phasegrid re"}
    words["COMP_CWORD"] = "1"
    assert cli(env=words).stdout.split() == ["resume", "refine"]
    options = dict(words, COMP_WORDS="phasegrid refine results/x --bo", COMP_CWORD="3")
    assert cli(env=options).stdout.split() == ["--boundary"]


def test_typer_install_and_show_completion_options_are_offered():
    text = cli("--help").stdout
    assert "--install-completion" in text and "--show-completion" in text
    assert "completion" in text
