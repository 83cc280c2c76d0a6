"""Real, pip-installable wheels built on the fly, for tests and benchmarks.

    whl = make_wheel(tmp, "Foo-Bar", "1.0", requires=["baz>=1"], payload=1 << 20)

The output is byte-for-byte deterministic for the same arguments (fixed zip timestamps and
seeded payload), so its sha256 is stable across runs.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import random
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

# The one reader of a wheel's METADATA, under the name the tests and the emulator know.
from segfetch.wheels.dists import read_metadata as metadata_of

__all__ = ["make_wheel", "metadata_of", "wheel_name"]

_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can hold: no clock in the output


def wheel_name(name: str) -> str:
    """The escaped project name used in wheel file names and as the import name."""
    return canonicalize_name(name).replace("-", "_")


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def _metadata(
    name: str,
    version: str,
    requires: Sequence[str],
    extras: Mapping[str, Sequence[str]],
    requires_python: str | None,
) -> bytes:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python is not None:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {r}" for r in requires]
    for extra, reqs in extras.items():
        lines.append(f"Provides-Extra: {extra}")
        for r in reqs:
            req, _, marker = r.partition(";")
            cond = f'extra == "{extra}"'
            if marker.strip():  # keep the requirement's own marker, and-ed with the extra
                cond = f"({marker.strip()}) and {cond}"
            lines.append(f"Requires-Dist: {req.strip()}; {cond}")
    return ("\n".join(lines) + "\n\n").encode()


def make_wheel(
    folder: Path,
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    extras: Mapping[str, Sequence[str]] = {},
    requires_python: str | None = None,
    tag: str = "py3-none-any",
    payload: int = 0,
    seed: int = 0,
) -> Path:
    """Write `<folder>/<name>-<version>-<tag>.whl` and return its path.

    The wheel holds package `<name>` (escaped) with `__version__`, optionally `data.bin` of
    `payload` seeded random bytes (stored, so the wheel is about that large), and a dist-info
    with METADATA, WHEEL and RECORD.
    """
    pkg = wheel_name(name)
    ver = version.replace("-", "_")
    dist_info = f"{pkg}-{ver}.dist-info"
    files: list[tuple[str, bytes, int]] = [
        (f"{pkg}/__init__.py", f'__version__ = "{version}"\n'.encode(), zipfile.ZIP_DEFLATED)
    ]
    if payload:
        data = random.Random(f"{seed}:{name}:{version}").randbytes(payload)
        files.append((f"{pkg}/data.bin", data, zipfile.ZIP_STORED))
    wheel = "Wheel-Version: 1.0\nGenerator: segfetch.testing.wheelmaker\nRoot-Is-Purelib: true\n"
    wheel += "".join(f"Tag: {t}\n" for t in _expand_tag(tag))
    files.append(
        (
            f"{dist_info}/METADATA",
            _metadata(name, version, requires, extras, requires_python),
            zipfile.ZIP_DEFLATED,
        )
    )
    files.append((f"{dist_info}/WHEEL", wheel.encode(), zipfile.ZIP_DEFLATED))
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for arcname, data, _ in files:
        writer.writerow([arcname, _record_hash(data), len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    files.append((f"{dist_info}/RECORD", record.getvalue().encode(), zipfile.ZIP_DEFLATED))

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{pkg}-{ver}-{tag}.whl"
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for arcname, data, compression in files:
            info = zipfile.ZipInfo(arcname, date_time=_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = compression
            zf.writestr(info, data)
    tmp.replace(path)  # a reader (an emulator serving the folder) never sees half a wheel
    return path


def _expand_tag(tag: str) -> list[str]:
    """`py2.py3-none-any` -> [`py2-none-any`, `py3-none-any`]: WHEEL lists each tag."""
    pys, abis, plats = tag.split("-")
    return [
        f"{p}-{a}-{s}" for p in pys.split(".") for a in abis.split(".") for s in plats.split(".")
    ]
