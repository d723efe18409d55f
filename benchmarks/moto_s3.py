"""A moto S3 server on loopback that counts the requests it answers and can add a latency
to each: what the object-store benchmark (`store-object`) and the object-store tests run
the store against. The count is taken server-side (a WSGI middleware around moto's app),
so every request pyarrow's S3 client sends is seen, retries included.

In this process (`moto_s3()`: tests), or in a process of its own (`moto_s3(own_process=
True)`: the benchmark, so that moto's Python does not compete for this process's GIL with
the store's threads), then `python -m benchmarks.moto_s3 LATENCY` prints its port and
answers `GET /_requests` with its log as JSON (that request is not counted).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

BUCKET = "phase"
LOG_PATH = "/_requests"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class Requests:
    """The requests answered so far, by (method, kind): kind is "object" for a key,
    "bucket" for the bucket itself (listings). Thread-safe."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    log: list[tuple[str, str]] = field(default_factory=list)
    latency_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self, method: str, path: str) -> None:
        kind = "object" if path.strip("/").count("/") >= 1 else "bucket"
        with self.lock:
            self.counts[(method, kind)] += 1
            self.log.append((method, path))

    @property
    def total(self) -> int:
        with self.lock:
            return sum(self.counts.values())

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()
            self.log.clear()

    def since(self, mark: int) -> list[tuple[str, str]]:
        """The requests (method, path) answered after the first `mark` ones."""
        with self.lock:
            return list(self.log[mark:])


class RemoteRequests:
    """`Requests` of a server in another process, read over HTTP."""

    def __init__(self, port: int):
        self.url = f"http://127.0.0.1:{port}{LOG_PATH}"

    def _log(self) -> list[tuple[str, str]]:
        with urllib.request.urlopen(self.url) as response:
            return [tuple(item) for item in json.loads(response.read())]

    @property
    def total(self) -> int:
        return len(self._log())

    def since(self, mark: int) -> list[tuple[str, str]]:
        return self._log()[mark:]


def _counting(app: Callable, requests: Requests) -> Callable:
    def middleware(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == LOG_PATH:
            with requests.lock:
                body = json.dumps(requests.log).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        requests.seen(environ.get("REQUEST_METHOD", "?"), environ.get("PATH_INFO", ""))
        if requests.latency_seconds:
            time.sleep(requests.latency_seconds)
        return app(environ, start_response)

    return middleware


@dataclass
class MotoS3:
    """A running server: its port, the request counter, and the store URI of a prefix."""

    port: int
    requests: Requests | RemoteRequests
    server: Any

    def uri(self, prefix: str) -> str:
        """`s3://phase/<prefix>` reaching this server (plain HTTP, loopback)."""
        return f"s3://{BUCKET}/{prefix}?endpoint_override=127.0.0.1:{self.port}&scheme=http"

    def filesystem(self) -> Any:
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(
            endpoint_override=f"127.0.0.1:{self.port}",
            scheme="http",
            access_key=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            secret_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region=CREDENTIALS["AWS_DEFAULT_REGION"],
        )


@contextmanager
def moto_s3(latency_seconds: float = 0.0, own_process: bool = False) -> Iterator[MotoS3]:
    """A moto S3 server on 127.0.0.1 (a free port) with an empty bucket `phase`, each
    request delayed by `latency_seconds`; in a process of its own if `own_process`. The
    AWS_* variables must hold CREDENTIALS (set them before, e.g. with
    monkeypatch.setenv, so child processes see them too)."""
    if own_process:
        with _server_process(latency_seconds) as port:
            _fresh_bucket(port)
            yield MotoS3(port, RemoteRequests(port), None)
        return
    with _serving(latency_seconds) as (port, requests, server):
        _fresh_bucket(port)
        requests.reset()
        yield MotoS3(port, requests, server)


@contextmanager
def _serving(latency_seconds: float) -> Iterator[tuple[int, Requests, Any]]:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    requests = Requests(latency_seconds=latency_seconds)
    app = _counting(DomainDispatcherApplication(create_backend_app), requests)
    server = make_server("127.0.0.1", 0, app, True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], requests, server
    finally:
        server.shutdown()
        thread.join(timeout=10)


@contextmanager
def _server_process(latency_seconds: float) -> Iterator[int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.moto_s3", str(latency_seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield int(process.stdout.readline())
    finally:
        process.terminate()
        process.wait(timeout=30)


def _fresh_bucket(port: int) -> None:
    """An empty bucket `phase` (moto's backends are global to a process: reset first)."""
    import boto3

    urllib.request.urlopen(
        urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST")
    ).close()
    boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    ).create_bucket(Bucket=BUCKET)


if __name__ == "__main__":  # the server of moto_s3(own_process=True)
    with _serving(float(sys.argv[1])) as (port, _, _):
        print(port, flush=True)
        threading.Event().wait()
