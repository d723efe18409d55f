"""The wheel built from this tree holds every package and runs without the checkout:
installed non-editable into a fresh venv, `phasegrid --help` and `phasegrid plot` work on a
small stored campaign. About 11-16 s at load 8 (wheel build, venv, two CLI starts, 4 tiny cells)."""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from support.imports import PACKAGES, REPO

SHIPPED = tuple(p for p in PACKAGES if p != "benchmarks")  # benchmarks/ needs the checkout
LEFT_BEHIND = (
    ".venv",
    ".git",
    "build",
    "dist",
    "results",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    ".mypy_cache",
    ".ruff_cache",
)


def packages_in_tree(root: Path = REPO) -> set[str]:
    """Every package (a folder with __init__.py) of the shipped top-level packages."""
    return {
        ".".join(init.parent.relative_to(root).parts)
        for top in SHIPPED
        for init in (root / top).rglob("__init__.py")
    }


def packages_in_wheel(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {
            ".".join(Path(name).parent.parts)
            for name in archive.namelist()
            if name.endswith("/__init__.py") or name == "__init__.py"
        }


def missing_packages(wheel: Path, root: Path = REPO) -> list[str]:
    return sorted(packages_in_tree(root) - packages_in_wheel(wheel))


def build_wheel(out: Path) -> Path:
    """The wheel of a clean copy of the tree: a `build/` left in the checkout by an earlier
    build would otherwise hand setuptools packages that the config no longer finds."""
    source = out / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*LEFT_BEHIND))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (wheel,) = out.glob("phasegrid-*.whl")
    return wheel


def fresh_venv(path: Path) -> Path:
    """A new venv that sees this environment's third-party packages (torch, ray, pip, ...)
    through a .pth line, but not phasegrid: the editable install's finder is a .pth of
    that directory, and .pth files of a directory added this way are not run. Made
    without its own pip (ensurepip costs ~5 s): this environment's pip, imported through
    that line, installs into the venv's own site-packages."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=300
    )
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    deps = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    Path(purelib, "phasegrid-deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    return python


def small_campaign(store: Path, stripe_toml: Path) -> str:
    from pipeline.drivers.run import run_spec
    from pipeline.execute.local import LocalExecutor
    from pipeline.spec.campaign import load_campaign_text

    spec, text = load_campaign_text(stripe_toml)
    summary = run_spec(spec, text, str(store), LocalExecutor())
    assert summary.done == 4
    return summary.campaign


def test_the_package_check_names_a_subpackage_left_out(tmp_path):
    wheel = tmp_path / "phasegrid-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for package in sorted(packages_in_tree()):
            if package != "pipeline.figures":
                archive.writestr(package.replace(".", "/") + "/__init__.py", "")
    assert missing_packages(wheel) == ["pipeline.figures"]


@pytest.mark.usefixtures("one_torch_thread")
def test_wheel_installed_in_a_fresh_venv_runs_help_and_plot(tmp_path, stripe_spec):
    wheel = build_wheel(tmp_path / "dist")
    assert missing_packages(wheel) == []
    python = fresh_venv(tmp_path / "venv")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    outside = tmp_path / "elsewhere"  # not the checkout: nothing imports from it
    outside.mkdir()
    where = subprocess.run(
        [str(python), "-c", "import pipeline.figures; print(pipeline.__file__)"],
        cwd=outside,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert str(tmp_path / "venv") in where and str(REPO) not in where
    phasegrid = tmp_path / "venv" / "bin" / "phasegrid"
    shown = subprocess.run(
        [str(phasegrid), "--help"], cwd=outside, capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0 and "plot" in shown.stdout, shown.stderr
    campaign = small_campaign(
        tmp_path / "results", stripe_spec(grid={"seed": [0]}, flow={"max_steps": 60})
    )
    plotted = subprocess.run(
        [str(phasegrid), "plot", campaign, "--format", "png"],
        cwd=outside,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plotted.returncode == 0, plotted.stdout + plotted.stderr
    assert (Path(campaign) / "figures" / "phase_diagram.png").stat().st_size > 1000
