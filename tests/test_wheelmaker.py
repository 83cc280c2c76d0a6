"""Wheels from the wheel maker are real: pip installs them, RECORD is right, builds repeat."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from segfetch.testing.wheelmaker import make_wheel, metadata_of


def pip_env() -> dict[str, str]:
    """This machine's pip config adds find-links and extra indexes: keep pip to what we give."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def test_metadata_and_layout(tmp_path: Path) -> None:
    whl = make_wheel(
        tmp_path,
        "Foo.Bar-baz",
        "1.2",
        requires=["b>=1"],
        extras={"fast": ["c", 'd; python_version < "4"']},
        requires_python=">=3.8",
        payload=1000,
    )
    assert whl.name == "foo_bar_baz-1.2-py3-none-any.whl"
    md = metadata_of(whl).decode()
    assert "Metadata-Version: 2.1\nName: Foo.Bar-baz\nVersion: 1.2\n" in md
    assert "Requires-Python: >=3.8\n" in md
    assert "Requires-Dist: b>=1\n" in md
    assert "Provides-Extra: fast\n" in md
    assert 'Requires-Dist: c; extra == "fast"\n' in md
    assert 'Requires-Dist: d; (python_version < "4") and extra == "fast"\n' in md
    with zipfile.ZipFile(whl) as zf:
        assert zf.read("foo_bar_baz/__init__.py") == b'__version__ = "1.2"\n'
        info = zf.getinfo("foo_bar_baz/data.bin")
        assert info.compress_type == zipfile.ZIP_STORED and info.file_size == 1000
        wheel = zf.read("foo_bar_baz-1.2.dist-info/WHEEL").decode()
    assert "Root-Is-Purelib: true\n" in wheel and "Tag: py3-none-any\n" in wheel


def test_record_hashes_are_right(tmp_path: Path) -> None:
    whl = make_wheel(tmp_path, "a", "1.0", payload=5000)
    with zipfile.ZipFile(whl) as zf:
        rows = list(csv.reader(io.StringIO(zf.read("a-1.0.dist-info/RECORD").decode())))
        listed = {row[0] for row in rows}
        assert listed == set(zf.namelist())
        for path, digest, size in rows:
            if path.endswith("/RECORD"):
                assert (digest, size) == ("", "")
                continue
            data = zf.read(path)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == "sha256=" + want.decode() and int(size) == len(data)


def test_deterministic(tmp_path: Path) -> None:
    one = make_wheel(tmp_path / "1", "a", "1.0", requires=["b"], payload=3000, seed=7)
    two = make_wheel(tmp_path / "2", "a", "1.0", requires=["b"], payload=3000, seed=7)
    other = make_wheel(tmp_path / "3", "a", "1.0", requires=["b"], payload=3000, seed=8)
    assert one.read_bytes() == two.read_bytes()
    assert one.read_bytes() != other.read_bytes()


def test_pip_installs_into_fresh_venv(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "a", "1.0", requires=["b>=2"], requires_python=">=3.8")
    make_wheel(wheels, "b", "2.0", payload=10_000)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    pip = [py, "-m", "pip", "install", "--no-index", "--find-links", str(wheels), "a"]
    subprocess.run(pip, check=True, env=pip_env(), capture_output=True)
    out = subprocess.run(
        [py, "-c", "import a, b; print(a.__version__, b.__version__)"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.split() == ["1.0", "2.0"]


def test_sdists_repeat_byte_for_byte_and_name_their_backend(tmp_path: Path) -> None:
    import tarfile

    from segfetch.testing.wheelmaker import make_sdist

    one = make_sdist(tmp_path / "a", "Src.Pkg", "1.0", requires=["dep>=1"]).read_bytes()
    two = make_sdist(tmp_path / "b", "Src.Pkg", "1.0", requires=["dep>=1"])
    assert two.name == "src_pkg-1.0.tar.gz" and two.read_bytes() == one
    with tarfile.open(two) as tar:
        toml = tar.extractfile("src_pkg-1.0/pyproject.toml")
        assert toml is not None
        text = toml.read().decode()
    assert 'requires = ["sf-backend"]' in text and 'dependencies = ["dep>=1"]' in text
