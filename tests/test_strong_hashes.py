"""pip's --hash takes sha256, sha384 and sha512: a lock written with the other two installs
as pip's does, any one hash of a line may match, and a file that matches none is never
handed over, whether fetched or in the cache."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from helpers import one_line_error, segfetch

from segfetch.errors import UsageError
from segfetch.testing.emulator import Emulator, IndexOptions
from segfetch.testing.wheelmaker import make_wheel
from segfetch.wheels.requirements import RequirementSet
from segfetch.wheels.wanted import sha256_only

NAME = "sf_beta-1.1-py3-none-any.whl"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("index")
    make_wheel(d, "sf-beta", "1.1", payload=300_000, seed=1)
    make_wheel(d.parent / "other", "sf-beta", "1.1", payload=300_000, seed=2)  # same name
    return d


def digest(path: Path, algorithm: str) -> str:
    return hashlib.new(algorithm, path.read_bytes()).hexdigest()


def test_sha384_and_sha512_are_read_and_written_back_for_pip(tmp_path: Path) -> None:
    h384, h512, h256 = "A" * 96, "b" * 128, "c" * 64
    req = tmp_path / "req.txt"
    req.write_text(
        f"alpha==1 --hash=sha384:{h384} \\\n  --hash sha512:{h512}\nbeta==2 --hash=sha256:{h256}\n"
    )
    rs = RequirementSet()
    rs.add_file(req)
    assert rs.wanted[0].hashes == {f"sha384:{h384.lower()}", f"sha512:{h512}"}
    assert rs.wanted[1].hashes == {h256}
    assert not sha256_only(rs.wanted[0].hashes) and sha256_only(rs.wanted[1].hashes)
    rs.check_hashes()  # both hashed: hash-checking mode is content
    lines, _ = rs.pip_lines({})
    assert f"alpha==1 --hash=sha384:{h384.lower()} --hash=sha512:{h512}" in lines
    assert f"beta==2 --hash=sha256:{h256}" in lines


@pytest.mark.parametrize(
    "value", ["md5:" + "a" * 32, "sha512:" + "a" * 64, "SHA256:" + "a" * 64, "sha1:" + "a" * 40]
)
def test_a_hash_pip_refuses_is_refused(tmp_path: Path, value: str) -> None:
    req = tmp_path / "req.txt"
    req.write_text(f"alpha==1 --hash={value}\n")
    with pytest.raises(UsageError, match="--hash takes sha256:, sha384: or sha512:"):
        RequirementSet().add_file(req)


@pytest.mark.parametrize("hashes_in", ["both", "none"])  # the index's sha256, or none
async def test_a_sha512_lock_downloads_and_a_wrong_one_fails(
    tmp_path: Path, index_dir: Path, hashes_in: str
) -> None:
    right, wrong = index_dir / NAME, index_dir.parent / "other" / NAME
    cache = ["--cache-dir", str(tmp_path / "cache")]

    def lock(*hashes: str) -> str:
        path = tmp_path / f"req-{len(list(tmp_path.glob('req-*')))}.txt"
        path.write_text(f"sf-beta==1.1 {' '.join(f'--hash={h}' for h in hashes)}\n")
        return str(path)

    async with Emulator(index=index_dir, index_options=IndexOptions(hashes_in=hashes_in)) as emu:

        async def download(req: str, dest: str) -> tuple[int, list[bool], str]:
            proc = await segfetch(
                "download", "-r", req, "-d", str(tmp_path / dest), "--json",
                "--index-url", emu.index_url, *cache,
            )  # fmt: skip
            records = json.loads(proc.stdout) if proc.returncode == 0 else []
            err = "" if proc.returncode == 0 else one_line_error(proc)
            return proc.returncode, [r["cached"] for r in records], err

        # A sha512 of another file of the same name: no file is handed over, none kept.
        rc, _, err = await download(lock(f"sha512:{digest(wrong, 'sha512')}"), "bad")
        assert rc != 0 and "matches no --hash given" in err, err
        assert not (tmp_path / "bad" / NAME).exists()
        assert not list((tmp_path / "cache").rglob(NAME))
        # The right sha512: fetched and verified.
        rc, cached, err = await download(lock(f"sha512:{digest(right, 'sha512')}"), "a")
        assert (rc, cached) == (0, [False]), err
        assert (tmp_path / "a" / NAME).read_bytes() == right.read_bytes()
        # One hash of a line matches, the sha256 does not: pip takes the file, so does this.
        mixed = lock(f"sha256:{digest(wrong, 'sha256')}", f"sha384:{digest(right, 'sha384')}")
        rc, from_cache, err = await download(mixed, "b")
        assert (rc, from_cache) == (0, [True]), err  # (the copy the run before fetched)
        assert (tmp_path / "b" / NAME).read_bytes() == right.read_bytes()
        # The cached copy is held to the --hash too.
        rc, _, err = await download(lock(f"sha512:{digest(wrong, 'sha512')}"), "c")
        assert rc != 0 and "matches no --hash given" in err, err
        assert not (tmp_path / "c" / NAME).exists()
