"""The file on disk: ``<dest>.part`` with a control file beside it, and the final rename.

The control file (``<dest>.part.json``) says which byte ranges of the .part are written,
and of which file: the URL, size, validator (ETag / Last-Modified) and expected sha256.
The next run resumes from it only if that identity matches. The final path is only ever
made by an atomic rename of a complete, fsynced, verified .part.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from segfetch.engine.names import check_not_held, side_names
from segfetch.engine.ranges import RangeSet
from segfetch.errors import Busy, DiskError, HashMismatch, redact_url
from segfetch.units import human_bytes

HASH_CHUNK = 4 * 1024 * 1024
MAX_SIZE = 1 << 62  # past any disk; beyond it file offsets overflow
LOCK_TRIES = 5  # opens of a .part that was renamed away before we could lock it


@dataclass
class State:
    """What the control file records."""

    url: str
    size: int
    etag: str | None = None
    last_modified: str | None = None
    sha256: str | None = None
    done: RangeSet = field(default_factory=RangeSet)
    url_id: str = ""  # url_id(url), as the control file keeps it (its url has no query)

    def same_file(self, url: str, sha256: str | None) -> bool:
        # Identity is the sha256 where both runs know it (a mirror serves the same bytes),
        # else the URL, query and user included (?id=1 and ?id=2 of one path are other
        # files, with the same validators where nginx serves two files of one size and
        # mtime): adding or dropping --sha256 on a rerun keeps the progress.
        if sha256 is not None and self.sha256 is not None:
            return sha256 == self.sha256
        return url_id(url) == (self.url_id or url_id(self.url))


def address(url: str) -> str:
    """The URL without its user:password, query and fragment, for people reading the
    control file (a signed URL's query is a credential)."""
    return redact_url(url.partition("#")[0].partition("?")[0])


def url_id(url: str) -> str:
    """What tells one URL from another in the control file, without the URL's secrets: the
    sha256 of the URL with its query and user:password (users may see other files)."""
    return hashlib.sha256(url.partition("#")[0].encode()).hexdigest()


def parse_state(raw: object) -> State:
    """The state a control file's JSON records; ValueError for anything this version would
    not have written (edited, damaged, another program's). Pure."""
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    url, size, done = raw.get("url"), raw.get("size"), raw.get("done")
    if not isinstance(url, str) or not isinstance(size, int) or isinstance(size, bool):
        raise ValueError("bad url or size")
    if not 0 < size <= MAX_SIZE:
        raise ValueError("bad size")
    if not isinstance(done, list) or not all(_span(s, size) for s in done):
        raise ValueError("bad ranges")
    return State(
        url,
        size,
        etag=_text(raw, "etag", ascii=True),
        last_modified=_text(raw, "last_modified", ascii=True),
        sha256=_text(raw, "sha256"),
        done=RangeSet((a, b) for a, b in done),
        url_id=_text(raw, "url_id") or "",  # (none before: its url is the whole URL)
    )


def _text(raw: dict[str, object], key: str, ascii: bool = False) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"bad {key}")
    if ascii and value is not None and not value.isascii():  # (an If-Range httpx cannot send)
        raise ValueError(f"bad {key}")
    return value


def _span(x: object, size: int) -> bool:
    """[start, end) within the file, as save() writes it."""
    if not isinstance(x, list) or len(x) != 2:
        return False
    a, b = x
    ints = all(isinstance(n, int) and not isinstance(n, bool) for n in x)
    return ints and 0 <= a < b <= size


class PartFile:
    """``<dest>.part`` and its control file, held under an exclusive lock on the .part: one
    writer per destination, across processes and within one."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        part, control = side_names(dest.name)
        self.part = dest.with_name(part)
        self.control = dest.with_name(control)
        self.fd: int | None = None

    def acquire(self) -> None:
        """Open the .part (never truncating) and lock it; raise Busy if another writer has
        it. Call before reading the control file: what it claims is then ours alone."""
        if self.fd is not None:
            return
        for _ in range(LOCK_TRIES):
            fd = self._open_locked()
            if _is_at(fd, self.part):
                self.fd = fd
                return
            # Between our open and our lock the writer before us renamed that .part onto
            # the destination (or removed it): locking it is not locking the .part.
            os.close(fd)
        raise Busy(f"{self.part} keeps being replaced by another process; try again later")

    def _open_locked(self) -> int:
        try:  # never through a symlink: it would write where it points, and commit the link
            fd = os.open(self.part, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise _no_symlink(exc, self.part) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise
            holder = self._holder()
            raise Busy(
                f"{self.dest} is being downloaded by another {holder}; wait for it to finish, "
                "or choose another destination"
            ) from None
        return fd

    def _holder(self) -> str:
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            pid = int(json.loads(_read(self.control)).get("pid"))
            return f"segfetch (pid {pid})"
        return "process"

    def load(self, url: str, sha256: str | None) -> State | None:
        """The saved state if it is for this file and its .part is intact, else None."""
        try:
            state = self._saved()
            part_size = self.part.stat().st_size
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _no_symlink(exc, self.control) from None
            if exc.errno == errno.EISDIR:  # (said now: saving the progress would fail later)
                raise DiskError.from_os(exc, str(self.control)) from None
            return None
        except (ValueError, RecursionError):  # not a control file this version wrote
            return None
        ends = [e for _, e in state.done]
        if not state.same_file(url, sha256) or (ends and ends[-1] > min(part_size, state.size)):
            return None
        return state

    def save(self, state: State) -> None:
        raw = {
            "url": address(state.url),  # never a password or a query's token on disk
            "url_id": state.url_id or url_id(state.url),
            "size": state.size,
            "etag": state.etag,
            "last_modified": state.last_modified,
            "sha256": state.sha256,
            "done": [[s, e] for s, e in state.done],
            "pid": os.getpid(),  # names the writer to a second run that finds it busy
        }
        tmp = self.control.with_name(self.control.name + ".tmp")
        try:
            _write_new(tmp, json.dumps(raw))
            os.replace(tmp, self.control)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk must not leave a stray .tmp
            raise

    @trio.lowlevel.enable_ki_protection  # a second Ctrl-C waits for it: see release()
    def save_synced(self, state: State) -> None:
        """fdatasync, then save: at once, without a checkpoint, so that it also runs on the
        way out of a cancelled task (Ctrl-C, SIGTERM)."""
        if self.fd is not None:
            os.fdatasync(self.fd)
            self.save(state)

    def open(self, state: State | None = None) -> None:
        """The locked .part: emptied where ``state`` has no bytes saved, and refused where
        its file system lacks room for the bytes still to come (at the start, not once the
        disk is full at 90 %: aria2c's preallocation fails so too). None: as it is."""
        self.acquire()
        assert self.fd is not None
        if state is None:
            return
        if not state.done:
            os.ftruncate(self.fd, 0)
        need = state.size - state.done.total()
        if (free := room(os.fstatvfs(self.fd), os.geteuid() == 0)) is not None and need > free:
            raise DiskError(
                f"cannot write {self.dest}: {human_bytes(need)} still to come and "
                f"{human_bytes(free)} free there; free some space or choose another place"
            )

    def write(self, offset: int, data: bytes | memoryview) -> None:
        assert self.fd is not None
        while data:
            n = os.pwrite(self.fd, data, offset)
            data, offset = data[n:], offset + n

    async def sync(self) -> None:
        """Make written bytes durable before the control file claims them."""
        if self.fd is not None:
            await trio.to_thread.run_sync(os.fdatasync, self.fd)

    @trio.lowlevel.enable_ki_protection
    def release(self) -> None:
        """Close after a failure or an interruption. The .part stays only where its control
        file says which of its bytes a rerun resumes: else it is no use, and may be what
        fills the disk (the control file could not be written). A symlink is left alone.
        A Ctrl-C (a second one: the first cancels the download) is raised after this and
        save_synced, not inside them: cut short, the save left no control file, and this
        removed the .part."""
        kept = self.control.is_symlink() or self.control.is_dir()  # (not ours to judge)
        if self.fd is not None and not kept and not self._resumable():
            for path in (self.part, self.control):
                path.unlink(missing_ok=True)
        self.close()

    def _saved(self) -> State:
        """The control file's state: OSError, ValueError or RecursionError where there is
        none this version wrote."""
        return parse_state(json.loads(_read(self.control)))

    def _resumable(self) -> bool:
        assert self.fd is not None
        try:
            state = self._saved()
        except (OSError, ValueError, RecursionError):
            return False
        ends = [e for _, e in state.done]
        return bool(ends) and ends[-1] <= os.fstat(self.fd).st_size

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def commit(self, size: int) -> None:
        """Move the verified .part, cut to the file's ``size`` (a .part left longer by
        another program keeps its tail past the bytes hashed), to the final path; the
        control file goes last. All under the lock: a run that opened the .part before the
        rename finds it moved, not free."""
        assert self.fd is not None
        os.ftruncate(self.fd, size)
        _take_mode(self.fd, self.dest)
        os.fsync(self.fd)
        try:
            # The rename goes by name: a .part another program put in our place (a second
            # download whose destination is our .part's name) would become the file.
            here, ours = os.stat(self.part, follow_symlinks=False), os.fstat(self.fd)
            if (here.st_dev, here.st_ino) != (ours.st_dev, ours.st_ino):
                self.control.unlink(missing_ok=True)  # its ranges are not that file's
                raise DiskError(
                    f"{self.part} was replaced by another program during the download; "
                    f"{self.dest} was not written"
                )
            check_not_held(self.dest)  # (held since our start: another download's .part)
            os.replace(self.part, self.dest)
            fsync_dir(self.dest.parent)
            self.control.unlink(missing_ok=True)
        finally:
            self.close()

    def forget(self) -> None:
        """Drop the resume state (the .part stays, to be rewritten from byte 0)."""
        self.control.unlink(missing_ok=True)

    def reset(self) -> None:
        """Start the file over, keeping the lock: empty the .part, drop the control file."""
        self.forget()
        if self.fd is not None:
            os.ftruncate(self.fd, 0)

    def discard(self) -> None:
        """Leave nothing behind (the lock goes with the last descriptor)."""
        for path in (self.part, self.control):
            path.unlink(missing_ok=True)
        self.close()


class PrefixHasher:
    """sha256 of the file's completed prefix.

    Bytes that arrive in order (at the end of the hashed prefix) are hashed from memory as
    they are written; bytes that arrived early from other segments are read back from the
    .part (the page cache) in a thread once the prefix reaches them.
    """

    def __init__(self, part: PartFile, other: str | None = None) -> None:
        self.part = part
        self.hashed = 0
        # "md5=HEX": a second hash the file must have, taken along the same bytes
        self._other, _, self._want = (other or "").lower().partition("=")
        self._hashes = self._new()
        self._reading = False  # a read-back is under way in a thread: feed must wait
        # One buffer for every read-back, made by the first: a fresh 4 MiB one per read costs
        # a page fault per 4 KiB each time (measured, docs/benchmarks-history.md S8).
        self._buffer: bytearray | None = None

    def _new(self) -> list[Any]:  # (hashlib's hash objects have no public type)
        return [hashlib.sha256(), *([hashlib.new(self._other)] if self._other else [])]

    def reset(self) -> None:
        """From byte 0 again (the stream starts over)."""
        self.hashed, self._hashes = 0, self._new()

    def feed(self, offset: int, data: bytes | memoryview) -> None:
        """Bytes just written at offset: hashed now if they extend the prefix."""
        if offset == self.hashed and not self._reading:
            for h in self._hashes:
                h.update(data)
            self.hashed += len(data)

    async def advance(self, to: int) -> None:
        while self.hashed < to:
            n = min(HASH_CHUNK, to - self.hashed)
            self._reading = True
            try:
                await trio.to_thread.run_sync(self._update, self.hashed, n)
            finally:
                self._reading = False

    def _update(self, offset: int, n: int) -> None:
        assert self.part.fd is not None
        if self._buffer is None:
            self._buffer = bytearray(HASH_CHUNK)
        with memoryview(self._buffer)[:n] as view:
            if os.preadv(self.part.fd, [view], offset) != n:
                raise OSError(f"{self.part.part} is shorter than the bytes recorded in it")
            for h in self._hashes:
                h.update(view)
        self.hashed += n

    def hexdigest(self) -> str:
        return str(self._hashes[0].hexdigest())

    def mismatch(self, sha256: str | None, name: str) -> HashMismatch | None:
        """The file's mismatch with the sha256 and the other hash it must have, if any (the
        message of a second one: the download refetches after the first)."""
        checks = [("sha256", sha256, self.hexdigest())]
        if self._other:
            checks.append((self._other, self._want, self._hashes[-1].hexdigest()))
        for algorithm, want, got in checks:
            if want is not None and got != want:
                line = f"{algorithm} mismatch for {name}: expected {want}, got {got}, twice"
                return HashMismatch(f"{line}; nothing was kept", expected=want, got=got)
        return None


def _take_mode(fd: int, dest: Path) -> None:
    """A file replaced keeps its permissions, and its owner where we may give it (a key
    made private stays so, as curl, wget and aria2c leave it writing in place)."""
    try:
        old = os.stat(dest)
    except OSError:
        return  # (none yet: the umask's mode, as for any new file)
    os.fchmod(fd, stat.S_IMODE(old.st_mode))
    with contextlib.suppress(PermissionError):
        os.fchown(fd, old.st_uid, old.st_gid)


def room(fs: os.statvfs_result, root: bool) -> int | None:
    """The bytes a file system has free (root may use the blocks kept for it); None where
    it tells nothing of its size (some network and FUSE file systems say 0 blocks)."""
    if fs.f_blocks == 0:
        return None
    return (fs.f_bfree if root else fs.f_bavail) * fs.f_frsize


def _read(path: Path) -> str:
    with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), encoding="utf-8") as f:
        return f.read()


def _write_new(path: Path, text: str) -> None:
    """Write ``path`` as a new file, for its owner only (it names the URL): a symlink (or
    anything) left there is replaced, never followed."""
    path.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    with open(os.open(path, flags, 0o600), "w", encoding="utf-8") as f:
        f.write(text)


def _no_symlink(exc: OSError, path: Path) -> OSError | DiskError:
    if exc.errno != errno.ELOOP:
        return exc
    return DiskError(
        f"{path} is a symbolic link; segfetch never writes through one: remove it, or choose "
        "another destination"
    )


def _is_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is still the one at ``path``."""
    held = os.fstat(fd)
    try:
        there = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)


def fsync_path(path: Path) -> None:
    """What ``path`` names, on disk (a file's bytes, a folder's names)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fsync_path(path)
