"""`phasegrid data download`: checksum-verified, atomic, skip-if-present — against a
loopback HTTP server serving tiny fixture files made here."""

import functools
import gzip
import hashlib
import http.server
import io
import pickle
import struct
import tarfile
import threading

import numpy as np
import pytest

from pipeline.drivers.download import (
    SOURCES,
    ChecksumMismatchError,
    RemoteDataset,
    RemoteFile,
    download_dataset,
)
from tasks.data import load_task
from tasks.specs import DataSpec

IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def idx_bytes(array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def tiny_mnist_files():
    """40 train + 20 test 3×3 images, 6 per digit; {file name: gzipped IDX bytes}."""
    rng = np.random.default_rng(0)
    digits = rng.permutation(np.repeat(np.arange(10), 6))
    images = rng.integers(0, 256, size=(60, 3, 3), dtype=np.uint8)
    parts = (images[:40], digits[:40], images[40:], digits[40:])
    return dict(zip(IDX_NAMES, map(idx_bytes, parts)))


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    requests: list

    def do_GET(self):
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def server(tmp_path):
    """Loopback HTTP server on an ephemeral port serving tmp_path/served."""
    root = tmp_path / "served"
    root.mkdir()
    requests = []
    handler = type("Handler", (CountingHandler,), {"requests": requests})
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def sha256_table(files, url, folder="mnist", **extra):
    remote = tuple(
        RemoteFile(name, hashlib.sha256(blob).hexdigest(), "sha256") for name, blob in files.items()
    )
    return {"mnist": RemoteDataset(url, folder, remote, **extra)}


def test_download_verifies_skips_and_feeds_load_task(tmp_path, server, monkeypatch):
    root, url, requests = server
    files = tiny_mnist_files()
    for name, blob in files.items():
        (root / name).write_bytes(blob)
    dest = tmp_path / "data"
    seen = []
    report = download_dataset(
        "mnist",
        dest,
        progress=lambda *a: seen.append(a),
        sources=sha256_table(files, url),
        timeout=10,
    )
    assert report.directory == dest / "mnist" and sorted(report.downloaded) == sorted(IDX_NAMES)
    for name, blob in files.items():
        assert (dest / "mnist" / name).read_bytes() == blob
        assert (name, len(blob), len(blob)) in seen  # progress reaches the end
    assert not list((dest / "mnist").glob(".*"))  # no temp files left
    again = download_dataset("mnist", dest, sources=sha256_table(files, url), timeout=10)
    assert again.downloaded == () and sorted(again.present) == sorted(IDX_NAMES)
    assert len(requests) == 4  # nothing fetched twice

    monkeypatch.delenv("PHASEGRID_DATA", raising=False)
    task = load_task(
        DataSpec(
            dataset="mnist",
            dimension=4,
            test_size=20,
            kernel_size=10,
            train_size=30,
            data_dir=str(dest),
        )
    )
    assert task.source == f"idx:{dest / 'mnist'}"
    assert task.x_train.shape == (30, 4) and abs(int(task.y_train.sum())) <= 1


def test_corrupted_download_is_rejected_and_discarded(tmp_path, server):
    root, url, _ = server
    files = tiny_mnist_files()
    table = sha256_table(files, url)
    for name, blob in files.items():
        (root / name).write_bytes(blob)
    corrupted = bytearray(files[IDX_NAMES[2]])
    corrupted[len(corrupted) // 2] ^= 0xFF  # one byte changed
    (root / IDX_NAMES[2]).write_bytes(bytes(corrupted))
    dest = tmp_path / "data"
    with pytest.raises(ChecksumMismatchError, match=IDX_NAMES[2]):
        download_dataset("mnist", dest, sources=table, timeout=10)
    assert not (dest / "mnist" / IDX_NAMES[2]).exists()
    assert not list((dest / "mnist").glob(".*"))  # temp file deleted
    (root / IDX_NAMES[2]).write_bytes(files[IDX_NAMES[2]])  # server fixed
    (dest / "mnist" / IDX_NAMES[0]).write_bytes(b"stale")  # a bad local copy
    report = download_dataset("mnist", dest, base_url=url, sources=table, timeout=10)
    assert set(report.downloaded) == {IDX_NAMES[0], IDX_NAMES[2], IDX_NAMES[3]}  # 3: never reached
    assert report.present == (IDX_NAMES[1],)
    assert (dest / "mnist" / IDX_NAMES[0]).read_bytes() == files[IDX_NAMES[0]]


def tar_gz(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            archive.addfile(info, io.BytesIO(blob))
    return buffer.getvalue()


def test_cifar_tarball_is_unpacked_where_load_task_finds_it(tmp_path, server):
    root, url, _ = server
    rng = np.random.default_rng(2)
    batches = {
        f"cifar-10-batches-py/{name}": pickle.dumps(
            {b"data": rng.integers(0, 256, (10, 12), dtype=np.uint8), b"labels": list(range(10))}
        )
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    }
    blob = tar_gz(batches)
    (root / "cifar-10-python.tar.gz").write_bytes(blob)
    table = {
        "cifar10": RemoteDataset(
            url,
            "",
            (RemoteFile("cifar-10-python.tar.gz", hashlib.md5(blob).hexdigest()),),
            unpack_to="cifar-10-batches-py",
        )
    }
    report = download_dataset("cifar10", tmp_path / "data", sources=table, timeout=10)
    assert report.directory == tmp_path / "data" / "cifar-10-batches-py"
    task = load_task(
        DataSpec(
            dataset="cifar10",
            dimension=3,
            test_size=20,
            kernel_size=0,
            train_size=40,
            data_dir=str(tmp_path / "data"),
        )
    )
    assert task.x_train.shape == (40, 3) and task.x_kernel.shape == (0, 3)


def test_tarball_escaping_its_folder_is_refused(tmp_path, server):
    root, url, _ = server
    blob = tar_gz({"cifar-10-batches-py/test_batch": b"x", "../outside": b"y"})
    (root / "evil.tar.gz").write_bytes(blob)
    table = {
        "cifar10": RemoteDataset(
            url,
            "",
            (RemoteFile("evil.tar.gz", hashlib.md5(blob).hexdigest()),),
            unpack_to="cifar-10-batches-py",
        )
    }
    with pytest.raises(ValueError, match="outside"):
        download_dataset("cifar10", tmp_path / "data", sources=table, timeout=10)
    assert (
        not (tmp_path / "outside").exists()
        and not (tmp_path / "data" / "cifar-10-batches-py").exists()
    )


def test_canonical_table_lists_the_published_checksums():
    assert set(SOURCES) == {"mnist", "fashion-mnist", "cifar10"}
    for dataset in SOURCES.values():
        for remote in dataset.files:
            assert remote.algorithm == "md5" and len(remote.digest) == 32
    with pytest.raises(ValueError, match="downloadable"):
        download_dataset("stripe", "/nonexistent")
