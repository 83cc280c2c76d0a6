"""Real, pip-installable wheels built on the fly, for tests and benchmarks.

    whl = make_wheel(tmp, "Foo-Bar", "1.0", requires=["baz>=1"], payload=1 << 20)

Also a source tree (``make_project``) and an sdist (``make_sdist``) that build with a tiny
PEP 517 / PEP 660 backend, itself a wheel (``make_backend``): tests of sdists and editables
need no setuptools from the internet.

    make_backend(index, requires=["helper"])   # sf-backend, as build-system requires
    make_sdist(index, "Src-Pkg", "1.0", requires=["baz"])

The output is byte-for-byte deterministic for the same arguments (fixed zip timestamps and
seeded payload), so its sha256 is stable across runs.
"""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import io
import random
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

# The one reader of a wheel's METADATA, under the name the tests and the emulator know.
from segfetch.wheels.dists import read_metadata as metadata_of

__all__ = ["make_backend", "make_project", "make_sdist", "make_wheel", "metadata_of", "wheel_name"]

BACKEND = "sf-backend"  # the backend's project, and (escaped) its module
# The backend: reads [project] of pyproject.toml (name, version, dependencies) and builds a
# py3-none-any wheel of the package folder, or an editable one (a .pth to the source tree).
_BACKEND_CODE = """\
import base64, csv, hashlib, io, os, re, tomllib, zipfile


def _wheel(directory, editable):
    with open("pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    name, version = project["name"], project["version"]
    pkg = re.sub(r"[-_.]+", "_", name).lower()
    dist = f"{pkg}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n"
    meta += "".join(f"Requires-Dist: {r}\\n" for r in project.get("dependencies", []))
    files = []
    if editable:
        files.append((f"__editable__.{pkg}.pth", (os.path.abspath(".") + "\\n").encode()))
    else:
        for root, _, names in sorted(os.walk(pkg)):
            for n in sorted(names):
                with open(os.path.join(root, n), "rb") as f:
                    files.append((os.path.join(root, n).replace(os.sep, "/"), f.read()))
    tags = "Wheel-Version: 1.0\\nGenerator: sf-backend\\nRoot-Is-Purelib: true\\n"
    tags += "Tag: py3-none-any\\n"
    files += [(f"{dist}/METADATA", meta.encode()), (f"{dist}/WHEEL", tags.encode())]
    record = io.StringIO()
    for arcname, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        csv.writer(record, lineterminator="\\n").writerow([arcname, "sha256=" + digest, len(data)])
    record.write(f"{dist}/RECORD,,\\n")
    filename = f"{pkg}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, filename), "w") as zf:
        for arcname, data in [*files, (f"{dist}/RECORD", record.getvalue().encode())]:
            zf.writestr(arcname, data)
    return filename


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, False)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, True)
"""

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
    modules: Mapping[str, bytes] = {},
) -> Path:
    """Write `<folder>/<name>-<version>-<tag>.whl` and return its path.

    The wheel holds package `<name>` (escaped) with `__version__`, optionally `data.bin` of
    `payload` seeded random bytes (stored, so the wheel is about that large), `modules` (more
    files, by their path in the wheel), and a dist-info
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
    files = [f for f in files if f[0] not in modules]  # a module given replaces the default
    files += [(arcname, data, zipfile.ZIP_DEFLATED) for arcname, data in modules.items()]
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


def make_backend(folder: Path, *, requires: Sequence[str] = (), version: str = "1.0") -> Path:
    """The sf-backend wheel: a build backend the projects of make_project/make_sdist use."""
    code = {f"{wheel_name(BACKEND)}/__init__.py": _BACKEND_CODE.encode()}
    return make_wheel(folder, BACKEND, version, requires=requires, modules=code)


def make_project(
    folder: Path,
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    build_requires: Sequence[str] = (BACKEND,),
) -> Path:
    """A source tree `<folder>/<name>-<version>/` that the sf-backend builds (pip install
    it, or pip install -e it); returns the tree."""
    root = folder / f"{name}-{version}"
    pkg = root / wheel_name(name)
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(f'__version__ = "{version}"\n')
    toml = [
        "[build-system]",
        f"requires = {_toml_list(build_requires)}",
        f'build-backend = "{wheel_name(BACKEND)}"',
        "",
        "[project]",
        f'name = "{name}"',
        f'version = "{version}"',
        f"dependencies = {_toml_list(requires)}",
    ]
    (root / "pyproject.toml").write_text("\n".join(toml) + "\n")
    pkg_info = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    (root / "PKG-INFO").write_text(pkg_info)
    return root


def make_sdist(
    folder: Path,
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    build_requires: Sequence[str] = (BACKEND,),
) -> Path:
    """Write `<folder>/<name>-<version>.tar.gz` (name escaped), deterministic, and return it."""
    stem = f"{wheel_name(name)}-{version}"
    out = io.BytesIO()
    with tempfile.TemporaryDirectory() as scratch, tarfile.open(fileobj=out, mode="w") as tar:
        tree = make_project(
            Path(scratch), name, version, requires=requires, build_requires=build_requires
        )
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                info = tarfile.TarInfo(f"{stem}/{path.relative_to(tree).as_posix()}")
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{stem}.tar.gz"
    with gzip.GzipFile(target, "wb", mtime=0) as gz:
        gz.write(out.getvalue())
    return target


def _toml_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"
