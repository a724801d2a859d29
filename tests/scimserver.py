"""A real SCIM 2.0 service provider (``scim2-server`` from PyPI) on 127.0.0.1, for tests
and benchmarks."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SERVER = [
    sys.executable,
    "-c",
    "import sys; from scim2_server.testserver.cli import main; sys.exit(main())",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ScimServer:
    root: Path
    token: str = "test-token-0123456789"
    port: int = field(default_factory=free_port)
    service_provider_config: dict[str, Any] | None = None
    #: The schemas to serve (``--schema``), e.g. :meth:`schemas` of another server, edited.
    schemas: list[dict[str, Any]] | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ScimServer:
        args = [*SERVER, "--port", str(self.port), "--bearer-token", self.token]
        if self.service_provider_config is not None:
            spc = self.root / f"spc-{self.port}.json"
            spc.write_text(json.dumps(self.service_provider_config))
            args += ["--service-provider-config", str(spc)]
        if self.schemas is not None:
            path = self.root / f"schemas-{self.port}.json"
            path.write_text(json.dumps(self.schemas))
            args += ["--schema", str(path)]
        log = (self.root / f"scim-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 20
        with httpx.Client() as c:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, "scim2-server exited"
                try:
                    if c.get(f"{self.url}/ServiceProviderConfig").status_code == 200:
                        return self
                except httpx.TransportError:
                    time.sleep(0.02)
        raise AssertionError("scim2-server did not come up")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )

    def all(self, endpoint: str = "/Users") -> list[dict[str, Any]]:
        """Every resource of *endpoint*, page by page."""
        out: list[dict[str, Any]] = []
        with self.client() as c:
            while True:
                body = c.get(endpoint, params={"startIndex": len(out) + 1, "count": 1000}).json()
                out += body.get("Resources", [])
                if len(out) >= body["totalResults"] or not body.get("Resources"):
                    return out

    def served_schemas(self) -> list[dict[str, Any]]:
        """The schemas this server serves (``/Schemas``), without their ``meta``."""
        with self.client() as c:
            listed = c.get("/Schemas").json()["Resources"]
        return [{k: v for k, v in s.items() if k != "meta"} for s in listed]

    def post(self, endpoint: str, resource: dict[str, Any]) -> dict[str, Any]:
        with self.client() as c:
            r = c.post(endpoint, json=resource)
            assert r.status_code == 201, r.text
            return r.json()  # type: ignore[no-any-return]


@contextmanager
def scim_server(root: Path, **kwargs: Any) -> Iterator[ScimServer]:
    server = ScimServer(root, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()
