"""uv started before trio and httpx load (wheels/prelaunch.py), with a stand-in for uv: its
connection waits in the kernel until the socket is served; it is stopped if not adopted."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from segfetch.wheels.cache import Cache
from segfetch.wheels.installer import Installer
from segfetch.wheels.prelaunch import all_cached, prelaunch

# A stand-in for uv: GET the index root given as --index-url, write the status line and its
# own arguments to the file beside it, exit 0. With "wait" in its name, it sleeps instead.
FAKE_UV = """\
import socket, sys, time
from pathlib import Path
from urllib.parse import urlsplit
out = Path(sys.argv[0]).with_suffix(".said")
out.write_text(" ".join(sys.argv[1:]) + "\\n")
if "wait" in sys.argv[0]:
    time.sleep(60)
url = urlsplit(sys.argv[sys.argv.index("--index-url") + 1])
with socket.create_connection((url.hostname, url.port), timeout=10) as s:
    s.sendall(f"GET {url.path} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n".encode())
    status = s.makefile("rb").readline().decode().strip()
with out.open("a") as f:
    f.write(status + "\\n")
"""


def fake_uv(tmp_path: Path, name: str = "uv") -> Installer:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n{FAKE_UV}")
    path.chmod(0o755)
    return Installer("uv", str(path))


def answer_one(sock: socket.socket) -> str:
    """Serve one request on the listening socket: its request line."""
    sock.settimeout(10)
    conn, _ = sock.accept()
    with conn:
        line = conn.makefile("rb").readline().decode().strip()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    return line


def test_uv_connects_before_the_socket_is_served_and_is_answered_later(tmp_path: Path) -> None:
    uv = fake_uv(tmp_path)
    said = tmp_path / "uv.said"
    with prelaunch(uv, "/target/python", ["-r", "reqs.txt"], [], True, tmp_path) as pre:
        assert pre is not None
        url = f"http://127.0.0.1:{pre.sock.getsockname()[1]}/simple/"
        # Nothing serves the socket yet; uv's request is answered once it is.
        assert answer_one(pre.sock) == "GET /simple/ HTTP/1.1"
        assert pre.proc.wait(10) == 0
    args = said.read_text().splitlines()[0].split()
    assert said.read_text().splitlines()[1] == "HTTP/1.1 200 OK"
    assert args[:4] == ["pip", "install", "--python", "/target/python"]
    assert args[args.index("--index-url") + 1] == url
    assert Path(args[args.index("--cache-dir") + 1]).parent == tmp_path / "uv-runs"
    assert "--no-deps" in args and args[-3:] == ["-r", "reqs.txt", "-q"]


def test_a_uv_not_adopted_is_stopped_on_the_way_out(tmp_path: Path) -> None:
    uv = fake_uv(tmp_path, "uv-wait")
    with prelaunch(uv, sys.executable, [], [], False, tmp_path) as pre:
        assert pre is not None
        proc = pre.proc
        assert proc.poll() is None
    assert proc.poll() is not None  # stopped and reaped
    assert pre.sock.fileno() == -1  # closed


def test_the_users_no_deps_is_not_said_twice(tmp_path: Path) -> None:
    uv = Installer("uv", fake_uv(tmp_path).uv, ("--no-deps",))
    with prelaunch(uv, sys.executable, [], ["--no-deps"], True, tmp_path) as pre:
        assert pre is not None and not pre.no_deps
        answer_one(pre.sock)
        pre.proc.wait(10)
    assert (tmp_path / "uv.said").read_text().split().count("--no-deps") == 1


def test_no_uv_where_the_cache_folder_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with prelaunch(fake_uv(tmp_path), sys.executable, [], [], True, tmp_path / "file") as pre:
        assert pre is None
    assert not (tmp_path / "uv.said").exists()


def test_all_cached_asks_a_file_for_every_hashed_requirement(tmp_path: Path) -> None:
    a, b = "a" * 64, "b" * 64
    Cache(tmp_path).path(a, "x-1.0-py3-none-any.whl").parent.mkdir(parents=True)  # its layout
    assert all_cached(tmp_path, [{a}, {b, a}])
    assert not all_cached(tmp_path, [{a}, {b}])
    assert not all_cached(tmp_path, [{a}, set()])  # a requirement without hashes
    assert not all_cached(tmp_path, [])
