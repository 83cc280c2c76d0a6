"""A real nginx (the Debian package) for the tests: its own config, logs and files in a folder,
listening on free 127.0.0.1 ports only, and stopped with all its workers at the end.

    with running_nginx(find_nginx(), folder) as server:
        server.url("plain", "random.bin")      # http://127.0.0.1:PORT/plain/random.bin

Locations of the plain HTTP server, all serving the same folder (``server.files``):

- ``/plain/``: static files, sendfile and ETag on (nginx's ETag is mtime-size, in hex);
- ``/slow/``: ``limit_rate 256k``, per request, so per connection;
- ``/conn2/``: ``limit_conn`` 2 per client address, ``limit_conn_status 503``, and
  ``limit_rate 256k`` so that requests last long enough for the limit to bite (nginx sends
  the first second's worth of a response at once: a request of 256 KiB or less is over before
  the next one comes);
- ``/gzip/``: ``gzip on`` for every type and size (a client asking for ``identity`` gets raw
  bytes);
- ``/lb/``: a load balancer (``proxy_pass``, round robin per request) in front of two nodes
  on unix sockets: node A serves ``server.files``, node B ``server.node_b``, each with
  ``limit_rate 1m``. ``server.on_both_nodes(name)`` copies a file to node B with another
  mtime: the same bytes under another ETag and Last-Modified, as nodes deployed apart have.

The TLS server (``server.url(..., tls=True)``) serves the same folder at ``/`` with a
certificate for 127.0.0.1 from a throw-away CA (trustme; ``server.ca_file`` is the bundle to
trust), and offers HTTP/2 by ALPN.

Every request is one JSON line in ``server.access_log`` (``server.log()`` reads them): the
connection serial number, status, URI, protocol, port, Range header, bytes sent and more.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import trustme

NOT_INSTALLED = "nginx not installed: apt-get install nginx-light"

# One JSON object a line; every value a string (escape=json quotes what needs it).
_LOG_FIELDS = {
    "conn": "$connection",
    "conn_reqs": "$connection_requests",
    "status": "$status",
    "method": "$request_method",
    "uri": "$uri",
    "proto": "$server_protocol",
    "port": "$server_port",
    "range": "$http_range",
    "if_range": "$http_if_range",
    "sent": "$body_bytes_sent",
    "accept_encoding": "$http_accept_encoding",
    "content_encoding": "$sent_http_content_encoding",
    "etag": "$sent_http_etag",
    "user_agent": "$http_user_agent",
    "tls": "$ssl_protocol",
    "h2": "$http2",
}
_LOG_FORMAT = "{" + ",".join(f'"{k}":"{v}"' for k, v in _LOG_FIELDS.items()) + "}"


def find_nginx() -> str | None:
    """The nginx binary: on PATH, else Debian's /usr/sbin/nginx (not on a user's PATH)."""
    found = shutil.which("nginx")
    if found:
        return found
    if os.access("/usr/sbin/nginx", os.X_OK):
        return "/usr/sbin/nginx"
    return None


def nginx_version(binary: str) -> tuple[int, ...]:
    """(1, 22, 1) from ``nginx -v`` (which writes to stderr)."""
    proc = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10, check=False)
    match = re.search(r"nginx/(\d+(?:\.\d+)*)", proc.stderr + proc.stdout)
    if match is None:
        raise RuntimeError(f"cannot read nginx's version: {proc.stderr.strip()!r}")
    return tuple(int(p) for p in match.group(1).split("."))


@dataclass(frozen=True)
class LogLine:
    conn: int
    status: int
    uri: str
    proto: str
    port: int
    range: str
    if_range: str
    sent: int
    accept_encoding: str
    content_encoding: str
    etag: str
    user_agent: str
    tls: str
    h2: str


USER, PASSWORD = "tester", "s3cret"  # /auth/'s basic authentication


@dataclass(frozen=True)
class Nginx:
    binary: str
    version: tuple[int, ...]
    folder: Path  # config, pid file, logs, temp paths
    files: Path  # what every location serves
    node_b: Path  # what /lb/'s second node serves
    port: int  # plain HTTP
    tls_port: int  # TLS, with HTTP/2 offered
    ca_file: Path  # the CA to trust for the TLS port (PEM)
    access_log: Path
    error_log: Path
    pid: int  # the master process

    def pids(self) -> list[int]:
        """The master's and its workers' process ids."""
        master = psutil.Process(self.pid)
        return [self.pid, *(p.pid for p in master.children(recursive=True))]

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    def on_both_nodes(self, name: str) -> None:
        """``files/name`` on node B too: the same bytes, a day older there."""
        source = self.files / name
        shutil.copyfile(source, self.node_b / name)
        older = source.stat().st_mtime - 86400
        os.utime(self.node_b / name, (older, older))

    def url(self, location: str, name: str, *, tls: bool = False) -> str:
        if tls:
            return f"https://127.0.0.1:{self.tls_port}/{name}"
        return f"http://127.0.0.1:{self.port}/{location}/{name}"

    def log(self, uri: str | None = None) -> list[LogLine]:
        """The access log's lines, those for ``uri`` only if given."""
        lines = []
        for text in self.access_log.read_text().splitlines():
            raw = json.loads(text)
            line = LogLine(
                conn=int(raw["conn"]),
                status=int(raw["status"]),
                uri=raw["uri"],
                proto=raw["proto"],
                port=int(raw["port"]),
                range=raw["range"],
                if_range=raw["if_range"],
                sent=int(raw["sent"]),
                accept_encoding=raw["accept_encoding"],
                content_encoding=raw["content_encoding"],
                etag=raw["etag"],
                user_agent=raw["user_agent"],
                tls=raw["tls"],
                h2=raw["h2"],
            )
            if uri is None or line.uri == uri:
                lines.append(line)
        return lines


def _free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (free now; nginx binds them a moment later, and a
    lost race is retried by the caller)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _listen_tls(version: tuple[int, ...], port: int) -> str:
    # `http2 on;` came in 1.25.1; before it, http2 is a parameter of `listen`.
    if version >= (1, 25, 1):
        return f"listen 127.0.0.1:{port} ssl;\n        http2 on;"
    return f"listen 127.0.0.1:{port} ssl http2;"


def write_config(
    folder: Path, files: Path, version: tuple[int, ...], port: int, tls_port: int
) -> Path:
    """nginx.conf with every path inside ``folder``; listens on 127.0.0.1 (and on unix
    sockets in ``folder``, /lb/'s nodes) only."""
    temp = folder / "temp"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (temp / sub).mkdir(parents=True, exist_ok=True)
    # As root the workers would run as `nobody`, who cannot read pytest's 0700 folders.
    user = "user root;\n" if os.geteuid() == 0 else ""
    alias = f"alias {files}/;"
    conf = f"""\
daemon off;
master_process on;
worker_processes 1;
{user}pid {folder}/nginx.pid;
lock_file {folder}/nginx.lock;
error_log {folder}/error.log info;
worker_shutdown_timeout 3s;

events {{
    worker_connections 512;
}}

http {{
    default_type application/octet-stream;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    log_format segfetch_test escape=json '{_LOG_FORMAT}';
    access_log {folder}/access.log segfetch_test;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    etag on;
    keepalive_timeout 30s;
    keepalive_requests 10000;
    limit_conn_zone $binary_remote_addr zone=per_client:1m;

    upstream nodes {{
        server unix:{folder}/node-a.sock;
        server unix:{folder}/node-b.sock;
    }}
    server {{
        listen unix:{folder}/node-a.sock;
        access_log off;
        location /lb/ {{ {alias} limit_rate 1m; }}
    }}
    server {{
        listen unix:{folder}/node-b.sock;
        access_log off;
        location /lb/ {{ alias {folder}/node-b/; limit_rate 1m; }}
    }}

    server {{
        listen 127.0.0.1:{port};
        server_name 127.0.0.1;
        location /plain/ {{ {alias} }}
        location /slow/ {{ {alias} limit_rate 256k; }}
        location /conn2/ {{
            {alias}
            limit_conn per_client 2;
            limit_conn_status 503;
            limit_rate 256k;
        }}
        location /gzip/ {{
            {alias}
            gzip on;
            gzip_types *;
            gzip_min_length 0;
            gzip_vary on;
        }}
        location /auth/ {{
            {alias}
            auth_basic "segfetch tests";
            auth_basic_user_file {folder}/htpasswd;
        }}
        # (a redirect within the host, to where the credentials are asked for)
        location /to-auth/ {{ rewrite ^/to-auth/(.*)$ /auth/$1 redirect; }}
        location /lb/ {{
            proxy_pass http://nodes;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}

    server {{
        {_listen_tls(version, tls_port)}
        server_name 127.0.0.1;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate {folder}/server-chain.pem;
        ssl_certificate_key {folder}/server-key.pem;
        location / {{ {alias} }}
    }}
}}
"""
    (folder / "htpasswd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    path = folder / "nginx.conf"
    path.write_text(conf)
    return path


def _write_tls(folder: Path) -> Path:
    """A throw-away CA and a certificate for 127.0.0.1 signed by it; returns the CA bundle."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    (folder / "server-chain.pem").write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(folder / "server-key.pem"))
    ca_file = folder / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return ca_file


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the master and every worker: SIGQUIT (graceful), then SIGTERM, then SIGKILL."""
    try:
        workers = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        workers = []
    for sig in (signal.SIGQUIT, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    proc.wait(timeout=5)
    _, alive = psutil.wait_procs(workers, timeout=5)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5)


def _start(binary: str, folder: Path, conf: Path) -> subprocess.Popen[bytes]:
    with (folder / "stderr.log").open("ab") as err:
        return subprocess.Popen(
            [binary, "-p", f"{folder}/", "-c", str(conf), "-e", f"{folder}/error.log"],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            start_new_session=True,  # a Ctrl-C of pytest does not reach it: the fixture stops it
        )


@contextlib.contextmanager
def running_nginx(binary: str, folder: Path) -> Iterator[Nginx]:
    """nginx serving ``folder/files``, config and logs in ``folder``; stopped on exit."""
    version = nginx_version(binary)
    files = folder / "files"
    files.mkdir(exist_ok=True)
    (folder / "node-b").mkdir(exist_ok=True)
    ca_file = _write_tls(folder)
    for _attempt in range(3):  # a free port taken by someone else meanwhile: pick again
        port, tls_port = _free_ports(2)
        conf = write_config(folder, files, version, port, tls_port)
        test = subprocess.run(
            [binary, "-t", "-q", "-p", f"{folder}/", "-c", str(conf), "-e", f"{folder}/error.log"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if test.returncode != 0:
            raise RuntimeError(f"nginx -t rejects the test config: {test.stderr.strip()}")
        proc = _start(binary, folder, conf)
        try:
            deadline = time.monotonic() + 10
            while proc.poll() is None and time.monotonic() < deadline:
                if _accepts(port) and _accepts(tls_port):
                    break
                time.sleep(0.05)
            else:
                err = (folder / "error.log").read_text(errors="replace")[-2000:]
                if proc.poll() is not None and "Address already in use" in err:
                    continue
                raise RuntimeError(f"nginx did not start: {err}")
            yield Nginx(
                binary=binary,
                version=version,
                folder=folder,
                files=files,
                node_b=folder / "node-b",
                port=port,
                tls_port=tls_port,
                ca_file=ca_file,
                access_log=folder / "access.log",
                error_log=folder / "error.log",
                pid=proc.pid,
            )
            return
        finally:
            _stop(proc)
    raise RuntimeError("nginx found no free port on 127.0.0.1 in 3 tries")
