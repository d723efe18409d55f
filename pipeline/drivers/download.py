"""`phasegrid data download NAME`: fetch the canonical dataset files, verified.

Files land where tasks.data looks for them: dest_dir/mnist/, dest_dir/fashion-mnist/
(IDX *.gz files) and dest_dir/cifar-10-batches-py/ (unpacked from the official
tarball, kept as dest_dir/cifar-10-python.tar.gz). Each file is streamed to a
temporary name in the same folder, its checksum checked against the published one
(MD5: that is what the dataset authors publish), and only then renamed into place
with os.replace, so a reader never sees a partial file. Files already present with
the right checksum are not fetched again. Only the standard library is used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    name: str  # file name, on the server and on disk
    digest: str  # published checksum, hex
    algorithm: str = "md5"  # any hashlib name (md5, sha256)


@dataclass(frozen=True)
class RemoteDataset:
    base_url: str  # files are fetched from base_url/name
    folder: str  # written under dest_dir/folder ("" = dest_dir itself)
    files: tuple[RemoteFile, ...]
    unpack_to: str | None = None  # tarball: its top folder, unpacked into dest_dir


_IDX = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

# Canonical locations and published MD5 checksums (the same as torchvision's).
SOURCES: dict[str, RemoteDataset] = {
    "mnist": RemoteDataset(
        "https://ossci-datasets.s3.amazonaws.com/mnist",
        "mnist",
        tuple(
            RemoteFile(n, h)
            for n, h in zip(
                _IDX,
                (
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "d53e105ee54ea40749a09fcbcd1e9432",
                    "9fb629c4189551a2d022fa330f9573f3",
                    "ec29112dd5afa0611ce80d1b7f02629c",
                ),
            )
        ),
    ),
    "fashion-mnist": RemoteDataset(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
        "fashion-mnist",
        tuple(
            RemoteFile(n, h)
            for n, h in zip(
                _IDX,
                (
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "25c81989df183df01b3e8a0aad5dffbe",
                    "bef4ecab320f06d8554ea6380940ec79",
                    "bb300cfdad3c16e7a12a480ee83cd310",
                ),
            )
        ),
    ),
    "cifar10": RemoteDataset(
        "https://www.cs.toronto.edu/~kriz",
        "",
        (RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
        unpack_to="cifar-10-batches-py",
    ),
}

Progress = Callable[[str, int, int | None], None]  # (file name, bytes so far, total or None)


class ChecksumMismatchError(RuntimeError):
    """A downloaded file does not have its published checksum (it was discarded)."""


@dataclass(frozen=True)
class DownloadReport:
    directory: Path  # where the dataset's files now are
    downloaded: tuple[str, ...]  # fetched by this call
    present: tuple[str, ...]  # already there with the right checksum: skipped


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(
    url: str, target: Path, remote: RemoteFile, progress: Progress | None, timeout: float
) -> None:
    """Stream url to a temp file beside target, verify, then os.replace it into place."""
    handle, temp_name = tempfile.mkstemp(
        prefix=f".{remote.name}.", suffix=".part", dir=target.parent
    )
    temp, digest, done = Path(temp_name), hashlib.new(remote.algorithm), 0
    try:
        with (
            os.fdopen(handle, "wb") as out,
            urllib.request.urlopen(url, timeout=timeout) as response,
        ):
            total = (
                int(response.headers["Content-Length"])
                if response.headers["Content-Length"]
                else None
            )
            for block in iter(lambda: response.read(CHUNK_BYTES), b""):
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress is not None:
                    progress(remote.name, done, total)
        if digest.hexdigest() != remote.digest.lower():
            raise ChecksumMismatchError(
                f"{remote.name}: downloaded from {url} has {remote.algorithm} "
                f"{digest.hexdigest()}, "
                f"expected {remote.digest}; the file was discarded (try again, or another mirror "
                f"with base_url)"
            )
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def _safe_members(archive: tarfile.TarFile, top: str) -> list[tarfile.TarInfo]:
    """Members under `top` only, regular files and folders, no absolute or .. paths."""
    members = []
    for member in archive.getmembers():
        parts = Path(member.name).parts
        if Path(member.name).is_absolute() or ".." in parts or not parts or parts[0] != top:
            raise ValueError(f"unexpected path in archive: {member.name!r}")
        if not (member.isfile() or member.isdir()):
            raise ValueError(f"unexpected link or device in archive: {member.name!r}")
        members.append(member)
    return members


def _unpack(tarball: Path, dest_dir: Path, top: str) -> None:
    """Unpack into a temp folder, then move its `top` folder into dest_dir at once."""
    staging = Path(tempfile.mkdtemp(prefix=f".{top}.", dir=dest_dir))
    try:
        with tarfile.open(tarball, "r:*") as archive:
            members = _safe_members(archive, top)
            if hasattr(tarfile, "data_filter"):
                archive.extractall(staging, members=members, filter="data")
            else:  # pragma: no cover  (Python < 3.11.4; members were checked above)
                archive.extractall(staging, members=members)
        if (dest_dir / top).exists():
            shutil.rmtree(dest_dir / top)
        os.replace(staging / top, dest_dir / top)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download_dataset(
    name: str,
    dest_dir: str | os.PathLike,
    base_url: str | None = None,
    progress: Progress | None = None,
    *,
    sources: Mapping[str, RemoteDataset] | None = None,
    timeout: float = 60.0,
) -> DownloadReport:
    """Fetch dataset `name` into dest_dir (created if needed), verifying checksums.

    base_url replaces the canonical server (a mirror holding the same file names);
    sources replaces the SOURCES table (tests). Side effects: writes files under
    dest_dir; never leaves a partial file under a final name. Raises
    ChecksumMismatchError naming the file, or urllib's errors when offline."""
    table = SOURCES if sources is None else sources
    if name not in table:
        raise ValueError(f"cannot download {name!r}; downloadable: {', '.join(table)}")
    dataset, dest_dir = table[name], Path(dest_dir).expanduser()
    folder = dest_dir / dataset.folder
    folder.mkdir(parents=True, exist_ok=True)
    downloaded, present = [], []
    for remote in dataset.files:
        target = folder / remote.name
        if target.is_file() and file_digest(target, remote.algorithm) == remote.digest.lower():
            present.append(remote.name)
            continue
        _fetch(
            f"{(base_url or dataset.base_url).rstrip('/')}/{remote.name}",
            target,
            remote,
            progress,
            timeout,
        )
        downloaded.append(remote.name)
    if dataset.unpack_to is not None:
        if downloaded or not (dest_dir / dataset.unpack_to).is_dir():
            _unpack(folder / dataset.files[0].name, dest_dir, dataset.unpack_to)
        folder = dest_dir / dataset.unpack_to
    return DownloadReport(folder, tuple(downloaded), tuple(present))
