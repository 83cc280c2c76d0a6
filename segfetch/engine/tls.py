"""The client's TLS context, made when the first https connection needs it.

httpx makes its SSL context when a client is created, loading the whole CA bundle (20-30 ms
of a 0.2 s start-up), even when every URL is plain http. This is the same context, made by
httpx itself (``httpx.create_ssl_context()``: SSL_CERT_FILE, SSL_CERT_DIR or certifi's
bundle, certificates and host names verified), on its first use instead: a plain http
download never loads it, an https URL or a redirect to one loads it before its handshake.
"""

from __future__ import annotations

import ssl
from typing import Any, cast

import httpx

from segfetch.errors import DownloadError


class _OnFirstUse:
    """Stands for an ssl.SSLContext; every attribute is the real one's (httpcore calls
    set_alpn_protocols on it, trio's SSLStream wrap_bio)."""

    def __init__(self) -> None:
        object.__setattr__(self, "_context", None)

    def _real(self) -> ssl.SSLContext:
        context: ssl.SSLContext | None = object.__getattribute__(self, "_context")
        if context is None:
            try:
                context = httpx.create_ssl_context(verify=True, trust_env=True)
            except (OSError, ssl.SSLError) as exc:  # a bad SSL_CERT_FILE or SSL_CERT_DIR
                raise DownloadError(
                    f"cannot load the CA certificates for TLS: {exc}; "
                    "point SSL_CERT_FILE (or SSL_CERT_DIR) at your CA bundle"
                ) from None
            object.__setattr__(self, "_context", context)
        return context

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._real(), name, value)


def tls_context() -> ssl.SSLContext:
    """httpx's default verifying context for a client's ``verify=``, made on first use."""
    return cast(ssl.SSLContext, _OnFirstUse())
