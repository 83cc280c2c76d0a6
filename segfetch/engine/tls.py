"""The client's TLS context, made when the first https connection needs it.

httpx makes its SSL context when a client is created, loading the whole CA bundle (20-30 ms
of a 0.2 s start-up), even when every URL is plain http. This is the same context, made by
httpx itself (``httpx.create_ssl_context()``: SSL_CERT_FILE, SSL_CERT_DIR or certifi's
bundle, certificates and host names verified), on its first use instead: a plain http
download never loads it, an https URL or a redirect to one loads it before its handshake.
Where neither is set, REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE names the CA bundle, as for pip.
pip's own settings, for ``install``: a CA bundle instead of the default one (``cert``), a
client certificate (``client-cert``), hosts whose certificates are not checked
(``trusted-host``: ``insecure_context``).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence
from typing import Any, cast

import httpx

from segfetch.errors import DownloadError


class _OnFirstUse:
    """Stands for an ssl.SSLContext; every attribute is the real one's (httpcore calls
    set_alpn_protocols on it, trio's SSLStream wrap_bio)."""

    def __init__(
        self, cafile: str | None, client_cert: str | None, insecure: Sequence[str]
    ) -> None:
        object.__setattr__(self, "_context", None)
        object.__setattr__(self, "_files", (cafile, client_cert))
        # pip's trusted hosts, by name (TLS tells no port: "host:port" trusts the host)
        hosts = frozenset(h.rpartition(":")[0] if _has_port(h) else h for h in insecure)
        object.__setattr__(self, "_insecure", hosts)
        object.__setattr__(self, "_unchecked_context", None)  # theirs, made on first use

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        """What trio's SSLStream calls for each connection: a trusted host's goes unchecked."""
        name = server_hostname.decode() if isinstance(server_hostname, bytes) else server_hostname
        if name in object.__getattribute__(self, "_insecure"):
            context = self._unchecked()
        else:
            context = self._real()
        return context.wrap_bio(incoming, outgoing, server_side, server_hostname, session)

    def _unchecked(self) -> ssl.SSLContext:
        context: ssl.SSLContext | None = object.__getattribute__(self, "_unchecked_context")
        if context is None:
            context = insecure_context(object.__getattribute__(self, "_files")[1])
            object.__setattr__(self, "_unchecked_context", context)
        return context

    def _real(self) -> ssl.SSLContext:
        context: ssl.SSLContext | None = object.__getattribute__(self, "_context")
        if context is None:
            cafile, client_cert = object.__getattribute__(self, "_files")
            context = _make(cafile, client_cert)
            object.__setattr__(self, "_context", context)
        return context

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._real(), name, value)


# A CA bundle named for requests (so for pip) or curl, as pip takes it: a company's bundle
# is often given this way alone. SSL_CERT_FILE and SSL_CERT_DIR (httpx's) come first.
BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def _make(cafile: str | None, client_cert: str | None) -> ssl.SSLContext:
    where = f"pip's cert setting ({cafile})" if cafile else "SSL_CERT_FILE (or SSL_CERT_DIR)"
    env = os.environ
    httpx_own = env.get("SSL_CERT_FILE") or env.get("SSL_CERT_DIR")
    name = next((v for v in BUNDLE_VARIABLES if env.get(v)), "")
    if cafile is None and not httpx_own and name:
        cafile, where = env[name], name
    try:
        if cafile is None:
            context = httpx.create_ssl_context(verify=True, trust_env=True)
        else:
            folder = os.path.isdir(cafile)  # pip takes a folder of certificates too
            context = ssl.create_default_context(
                cafile=None if folder else cafile, capath=cafile if folder else None
            )
    except (OSError, ssl.SSLError) as exc:  # a bad SSL_CERT_FILE, SSL_CERT_DIR or cert
        raise DownloadError(
            f"cannot load the CA certificates for TLS: {exc}; point {where} at your CA bundle"
        ) from None
    _load_client_cert(context, client_cert)
    return context


def _load_client_cert(context: ssl.SSLContext, client_cert: str | None) -> None:
    if client_cert is None:
        return
    try:
        context.load_cert_chain(client_cert)  # pip's: one PEM file, key and certificate
    except (OSError, ssl.SSLError) as exc:
        raise DownloadError(
            f"cannot load the client certificate {client_cert}: {exc}; pip's client-cert "
            "setting must name one PEM file holding the private key and the certificate"
        ) from None


def tls_context(
    cafile: str | None = None, client_cert: str | None = None, insecure: Sequence[str] = ()
) -> ssl.SSLContext:
    """A verifying context for a client's ``verify=``, made on first use: httpx's default,
    or one trusting the CA bundle ``cafile``; with ``client_cert`` (a PEM file) loaded;
    the hosts ``insecure`` (pip's trusted-host) are not checked."""
    return cast(ssl.SSLContext, _OnFirstUse(cafile, client_cert, insecure))


def _has_port(host: str) -> bool:
    name, colon, port = host.rpartition(":")
    return bool(colon) and port.isdigit() and not name.endswith(":")  # not a bare IPv6


def insecure_context(client_cert: str | None = None) -> ssl.SSLContext:
    """For pip's trusted hosts: TLS without checking the server's certificate or name."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no CA bundle to load: none is used
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    _load_client_cert(context, client_cert)
    return context
