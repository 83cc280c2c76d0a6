"""What a download may do: one typed set of options for the engine, `get`, `download` and
`install`. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from segfetch.engine.retry import RetryPolicy

AUTO_CAP = 16  # -n auto never opens more than this per host
MAX_CONNECTIONS = 256  # more sockets than any host will give one client; bounds memory too
DEFAULT_MIN_SEGMENT = 256 * 1024
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 24 * 3600.0


@dataclass(frozen=True)
class Options:
    """``connections``: a fixed count per file, or None for auto (segfetch finds the count
    that the link rewards, up to AUTO_CAP); ``min_segment``: the smallest range worth its
    own connection; ``timeout``: seconds of silence before a connection counts as stalled."""

    connections: int | None = None
    min_segment: int = DEFAULT_MIN_SEGMENT
    timeout: float = DEFAULT_TIMEOUT
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    start: int | None = None  # auto: the count to begin with (what this host settled at before)

    def __post_init__(self) -> None:
        if self.connections is not None and not 1 <= self.connections <= MAX_CONNECTIONS:
            raise ValueError(f"connections must be from 1 to {MAX_CONNECTIONS}")
        if self.start is not None and not 1 <= self.start <= MAX_CONNECTIONS:
            raise ValueError(f"start must be from 1 to {MAX_CONNECTIONS}")
        if self.min_segment < 1:
            raise ValueError("min_segment must be at least 1")
        if not (math.isfinite(self.timeout) and 0 < self.timeout <= MAX_TIMEOUT):
            raise ValueError(f"timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds")

    @property
    def cap(self) -> int:
        """The most connections a file may use."""
        return AUTO_CAP if self.connections is None else self.connections


@dataclass(frozen=True)
class Network:
    """Where connections go and what TLS trusts, beyond the environment (HTTP(S)_PROXY,
    NO_PROXY, SSL_CERT_FILE, which httpx reads itself): pip's settings, for ``install``.
    ``insecure``: hosts ("host" or "host:port") whose certificates are not checked;
    ``env_proxies``: False where pip reads no proxy from the environment (--no-proxy-env,
    or a --proxy given, "" included)."""

    proxy: str | None = None
    cafile: str | None = None
    client_cert: str | None = None
    insecure: tuple[str, ...] = ()
    env_proxies: bool = True
