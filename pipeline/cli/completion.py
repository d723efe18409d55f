"""`phasegrid completion SHELL`: print the shell completion script (typer's own protocol).

`phasegrid --install-completion` / `--show-completion` (typer's options) do the same for the
shell they detect; this command names the shell, so it also works in a Dockerfile or a
cluster's login script where no interactive shell is there to detect.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from typer._completion_shared import get_completion_script

from pipeline.cli.common import app, out

PROG = "phasegrid"  # the console script of pyproject.toml: the name the shell completes
COMPLETE_VAR = "_PHASEGRID_COMPLETE"  # what the script sets when it asks phasegrid to complete


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"
    powershell = "powershell"


@app.command()
def completion(
    shell: Annotated[Shell, typer.Argument(help="The shell to print the script for.")],
) -> None:
    """Print the shell completion script for SHELL.

    E.g. `phasegrid completion bash > ~/.local/share/bash-completion/completions/phasegrid`,
    or `eval "$(phasegrid completion bash)"` in ~/.bashrc (zsh: the script as a file
    `_phasegrid` on $fpath; fish: ~/.config/fish/completions/phasegrid.fish)."""
    script = get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell.value)
    out.print(script, markup=False, highlight=False, soft_wrap=True)
