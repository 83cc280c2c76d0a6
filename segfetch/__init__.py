"""segfetch: segmented, resumable, verified downloads of Python wheels.

The public API::

    download(url, dest, options=None, *, sha256=None, size=None, progress=None, client=None,
             slots=None, seed=None) -> Result        (async, for trio)
    download_sync(url, dest, ...) -> Result          (the same, for code that is not async)
    Options, Result, Progress, Slots
    SegfetchError and its subclasses                 (see segfetch.errors)

Names are imported on first use, so `segfetch --version` does not load trio or httpx.
"""

from __future__ import annotations

__version__ = "0.1.0"

# Not typing's: importing it (20 ms) would widen the start-up window in which a Ctrl-C is
# a traceback, before `segfetch.cli.run` guards it. Type checkers take the name alike.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from segfetch.engine.download import Progress, Result, Slots, download, download_sync
    from segfetch.engine.options import Options
    from segfetch.errors import (
        Busy,
        DiskError,
        DownloadError,
        HashMismatch,
        HTTPStatusError,
        RetriesExhausted,
        SegfetchError,
        ServerError,
        UsageError,
    )

_HOMES = {
    "download": "segfetch.engine.download",
    "download_sync": "segfetch.engine.download",
    "Progress": "segfetch.engine.download",
    "Result": "segfetch.engine.download",
    "Slots": "segfetch.engine.download",
    "Options": "segfetch.engine.options",
    **dict.fromkeys(
        (
            "SegfetchError",
            "UsageError",
            "Busy",
            "DiskError",
            "DownloadError",
            "HTTPStatusError",
            "ServerError",
            "RetriesExhausted",
            "HashMismatch",
        ),
        "segfetch.errors",
    ),
}

__all__ = [
    "Busy",
    "DiskError",
    "DownloadError",
    "HTTPStatusError",
    "HashMismatch",
    "Options",
    "Progress",
    "Result",
    "RetriesExhausted",
    "SegfetchError",
    "ServerError",
    "Slots",
    "UsageError",
    "__version__",
    "download",
    "download_sync",
]


def __getattr__(name: str) -> Any:
    import importlib

    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'segfetch' has no attribute {name!r}")
