"""The first request of `segfetch get`, sent before trio and httpx load.

Loading trio and httpx takes 0.3-0.45 s of a 2-core machine's Python, more than a small
file's whole fetch on a fast link. For a plain http URL that no proxy serves, a thread sends
the engine's first request at once (the same Range, the same headers) and the kernel keeps
the answer until the engine reads it (adopt.py). The engine takes that answer only for a
request equal to the one it would send; anything else closes the socket, and the engine asks
itself, as it would have. Only the standard library here: importing more would delay what
this is for.
"""

from __future__ import annotations

import os
import socket
import string
import sys
import threading
from urllib.parse import urlsplit

from segfetch import __version__
from segfetch.engine.netrcauth import credentials, netrc_file

# A target sent as it is written, with nothing for httpx to quote or normalise (the engine
# compares the two anyway): RFC 3986's unreserved and reserved characters, and '%'.
_VERBATIM = frozenset(string.ascii_letters + string.digits + "-._~:/?[]@!$&'()*+,;=%")
# A host name, an IPv4 or an IPv6 address, in the form httpx asks for it too (any other is
# left to httpx: to refuse, or to write in its own form).
_HOST = frozenset(string.ascii_lowercase + string.digits + "-.:")
_PROXIES = ("http_proxy", "all_proxy")
# The headers segfetch's httpx client sends on every request (client.py), beside httpx's
# own: here, so that the early request is the same by construction.
# identity: the bytes on the wire are the bytes of the file, so ranges mean file offsets.
CLIENT_HEADERS = {"Accept-Encoding": "identity", "User-Agent": f"segfetch/{__version__}"}


class Early:
    """``GET url`` with ``Range: range`` on a connection of its own, sent by a thread."""

    def __init__(self, host: str, port: int, target: str, range_: str, timeout: float):
        self.target, self.timeout = target, timeout
        authority = host if port == 80 else f"{host}:{port}"
        self.headers = [
            ("Host", authority),
            ("Accept", "*/*"),  # (these two are httpx's own)
            ("Connection", "keep-alive"),
            *CLIENT_HEADERS.items(),
            ("Range", range_),
        ]
        self._address = (host.strip("[]"), port)
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._taken = False
        self.sent = threading.Event()  # set once the request is out, if it goes out
        threading.Thread(target=self._send, name="segfetch-early", daemon=True).start()

    def request(self) -> bytes:
        lines = [f"GET {self.target} HTTP/1.1", *(f"{k}: {v}" for k, v in self.headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")

    def _send(self) -> None:
        try:
            sock = socket.create_connection(self._address, timeout=self.timeout)
        except (OSError, UnicodeError):  # (UnicodeError: a host name IDNA refuses)
            return  # the engine connects itself, and reports what fails
        with self._lock:
            try:
                if self._taken:
                    raise ConnectionAbortedError  # the engine went on without it
                sock.sendall(self.request())
            except OSError:
                sock.close()
                return
            self._sock = sock
            self.sent.set()

    def take(self) -> socket.socket | None:
        """The socket the request went out on, if it has by now (the thread then leaves it
        alone); the caller closes it. None after the first call."""
        with self._lock:
            self._taken = True
            sock, self._sock = self._sock, None
        return sock

    def close(self) -> None:
        if (sock := self.take()) is not None:
            sock.close()


def request_line(url: str) -> tuple[str, int, str] | None:
    """Host, port and target of an early request for ``url``, or None where one could not
    be the engine's first request: not plain http, a proxy in the environment, credentials
    in the URL or the netrc file, a target httpx would write otherwise. Pure, but for the
    environment."""
    # urlsplit drops tabs, newlines and carriage returns anywhere and spaces around the URL
    # (WHATWG's rule), where httpx refuses the URL: nothing goes out for such a text.
    if not all("!" <= c <= "~" for c in url):
        return None
    try:
        parts = urlsplit(url)
        port = 80 if parts.port is None else parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    written = parts.netloc.rpartition("]")[2].rpartition(":")[2]  # the port as written
    # An empty query is kept, as httpx keeps it ("/f?"); dot segments httpx removes.
    query = f"?{parts.query}" if "?" in url.partition("#")[0] else ""
    target = (parts.path or "/") + query
    if (
        parts.scheme.lower() != "http"
        or any(s in (".", "..") for s in parts.path.split("/"))
        or not host
        or not set(host) <= _HOST
        or port < 1
        or (parts.port is not None and written != str(port))  # ":080": httpx writes 80
        or parts.username is not None
        or not set(target) <= _VERBATIM
        or any(os.environ.get(k) for k in os.environ if k.lower() in _PROXIES)
        or ((netrc := netrc_file()) is not None and credentials(netrc, host) is not None)
        or sys.platform in ("darwin", "win32")  # (where httpx also asks the system's proxies)
    ):
        return None
    return (f"[{host}]" if ":" in host else host), port, target


def start(url: str, connections: int | None, min_segment: int, timeout: float) -> Early | None:
    """An Early for ``url`` (see request_line), asking the range _first_range asks for a
    fresh file of unknown size."""
    if (line := request_line(url)) is None:
        return None
    range_ = "bytes=0-" if connections == 1 else f"bytes=0-{min_segment - 1}"
    return Early(*line, range_, timeout)
