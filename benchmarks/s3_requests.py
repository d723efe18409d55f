"""A local S3 (moto's server on loopback) that counts the requests it serves, for the
store-scale row's "requests of `status` on S3" and the test that holds it under 20.

    with CountingS3() as s3:
        store = s3.bucket("phase")          # s3://phase?endpoint_override=...&scheme=http
        ...
        s3.requests.clear(); campaign_status(uri); len(s3.requests)

Each request is recorded server side as (method, path, query), whatever the client.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class CountingS3:
    """moto's ThreadedMotoServer on 127.0.0.1 (a free port) whose WSGI app records every
    request in `requests`. Sets the AWS credentials of moto's test account in os.environ
    while open (pyarrow's S3 client reads them there)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._server: Any = None
        self._saved: dict[str, str | None] = {}

    def _count(self, app: Callable) -> Callable:
        def counted(environ: dict, start_response: Callable) -> Iterable[bytes]:
            with self._lock:
                self.requests.append(
                    (environ["REQUEST_METHOD"], environ["PATH_INFO"], environ["QUERY_STRING"])
                )
            return app(environ, start_response)

        return counted

    def __enter__(self) -> CountingS3:
        from moto.server import ThreadedMotoServer
        from werkzeug.serving import make_server

        counting = self

        class Server(ThreadedMotoServer):
            def _server_entry(self) -> None:  # moto's own, with the app wrapped
                from moto.moto_server.werkzeug_app import (
                    DomainDispatcherApplication,
                    MotoRequestHandler,
                    create_backend_app,
                )

                app = counting._count(DomainDispatcherApplication(create_backend_app))
                self._server = make_server(
                    self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
                )
                self._server_ready_event.set()
                self._server.serve_forever()

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request
        self._saved = {k: os.environ.get(k) for k in CREDENTIALS}
        os.environ.update(CREDENTIALS)
        self._server = Server(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    @property
    def endpoint(self) -> str:
        host, port = self._server.get_host_and_port()
        return f"{host}:{port}"

    def bucket(self, name: str) -> str:
        """Create bucket `name`; its URI with this server's endpoint in the query string."""
        import boto3

        boto3.client(
            "s3", endpoint_url=f"http://{self.endpoint}", region_name="us-east-1"
        ).create_bucket(Bucket=name)
        return f"s3://{name}?endpoint_override={self.endpoint}&scheme=http"

    def counted(self, fn: Callable[[], Any]) -> tuple[Any, list[tuple[str, str, str]]]:
        """(fn's result, the requests served while it ran)."""
        with self._lock:
            self.requests.clear()
        result = fn()
        with self._lock:
            return result, list(self.requests)
