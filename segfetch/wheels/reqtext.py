"""The text of a requirements file, as pip reads it: its encoding (a BOM, a PEP 263 coding
line, else UTF-8 or the locale's), comments, line continuations, and the options of a line;
what a requirement's text names (a path, a VCS URL, a distribution's URL). Pure, but
for local_path, which looks on disk as pip does."""

from __future__ import annotations

import codecs
import contextlib
import locale
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from segfetch.errors import RequirementError, redact_url
from segfetch.units import HEX_DIGITS

VCS = ("git+", "hg+", "svn+", "bzr+")
ARCHIVES = (".whl", ".tar.gz", ".zip")  # what segfetch fetches from a direct URL
_COMMENT = re.compile(r"(^|\s+)#.*$")
# As pip's auto_decode, but UTF-32 first: a UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32-LE"),
    (codecs.BOM_UTF32_BE, "UTF-32-BE"),
    (codecs.BOM_UTF8, "UTF-8"),
    (codecs.BOM_UTF16_LE, "UTF-16-LE"),
    (codecs.BOM_UTF16_BE, "UTF-16-BE"),
)
_CODING = re.compile(rb"coding[:=]\s*([-\w.]+)")  # PEP 263, as pip reads it


def decode(raw: bytes, path: Path) -> str:
    """A requirements file's text, read as pip reads it: by its BOM, else by a coding line
    in its first two lines, else as the locale's encoding. UTF-8 is tried before the locale,
    as segfetch has always read these files."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return _decode(raw, encoding, path, len(bom))
    for line in raw.split(b"\n")[:2]:
        if line.startswith(b"#") and (m := _CODING.search(line)):
            return _decode(raw, m[1].decode("ascii"), path)
    for encoding in ("utf-8", locale.getpreferredencoding(False) or sys.getdefaultencoding()):
        with contextlib.suppress(UnicodeDecodeError, LookupError):
            return raw.decode(encoding)
    return _decode(raw, "UTF-8", path)  # to say where it is not UTF-8


def _decode(raw: bytes, encoding: str, path: Path, start: int = 0) -> str:
    try:
        return raw[start:].decode(encoding)
    except LookupError:
        raise RequirementError(
            f"{path}: unknown encoding {encoding!r} in its coding line"
        ) from None
    except UnicodeDecodeError as exc:
        where = f"{exc.reason} at byte {start + exc.start}"
        raise RequirementError(f"{path}: not {encoding} text ({where}); save it as UTF-8") from None


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, line) with continuations joined, then comments removed, in
    pip's order: a comment that ends in ``\\`` takes the next line with it, unless the
    comment is the whole line."""
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if raw.endswith("\\") and not _COMMENT.match(raw):
            pending.append(raw.strip("\\"))
            continue
        line = "".join([*pending, " " + raw if _COMMENT.match(raw) else raw])
        pending = []
        if line := _COMMENT.sub("", line).strip():
            out.append((start, line))
    if line := _COMMENT.sub("", "".join(pending)).strip():
        out.append((start, line))
    return out


def split_options(line: str) -> tuple[str, str, list[str]]:
    """'foo==1 --hash=sha256:ab' -> ('foo==1', '', ['--hash=sha256:ab'])."""
    head, sep, tail = line.partition(" --")
    options = ("--" + tail).split() if sep else []
    return head.strip(), sep, options


def options(words: list[str], where: str) -> list[tuple[str, str]]:
    """The options of a line that starts with one, as (name, value), as pip applies them
    (its handle_option_line): all of them (``--prefer-binary --pre``), but a line with -e
    is that editable, one with -r (else -c) that file, and nothing else of it counts; the
    last -i comes first and replaces the indexes before it, then the line's extra ones;
    only its first -f counts."""
    found = _words(words, where)
    for alone in (("-e", "--editable"), ("-r", "--requirement"), ("-c", "--constraint")):
        if first := [(opt, value) for opt, value in found if opt in alone][:1]:
            return first
    index = [(opt, value) for opt, value in found if opt in ("-i", "--index-url")][-1:]
    links = [(opt, value) for opt, value in found if opt in ("-f", "--find-links")][:1]
    rest = [o for o in found if o[0] not in ("-i", "--index-url", "-f", "--find-links")]
    return index + links + rest


def _words(words: list[str], where: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    rest = iter(words)
    for word in rest:
        if not word.startswith("-"):  # (pip would drop it without a word)
            why = "put a requirement on a line of its own"
            raise RequirementError(f"{where}: {word!r} follows an option; {why}")
        if word.startswith("--") and "=" in word:
            name, _, given = word.partition("=")
            found.append((name, given))
        elif word in _FLAGS:
            found.append((word, ""))
        elif not word.startswith("--") and len(word) > 2:
            found.append((word[:2], word[2:]))  # -rfile.txt
        elif (value := next(rest, None)) is not None:
            found.append((word, value))
        elif word in _VALUED:
            raise RequirementError(f"{where}: option {word} needs a value")
        else:
            found.append((word, ""))  # (an option unknown here: the caller says so)
    return found


_FLAGS = frozenset({"--pre", "--prefer-binary", "--require-hashes", "--no-index"})
# pip's requirement-file options that take a value
_VALUED = frozenset(
    {"-r", "--requirement", "-c", "--constraint", "-i", "--index-url", "--extra-index-url"}
    | {"-f", "--find-links", "-e", "--editable", "--trusted-host", "--only-binary"}
    | {"--no-binary", "--use-feature", "--hash", "--config-settings", "--global-option"}
)


def check_url_hashes(url: str, name: str, where: str) -> None:
    """A URL's ``#sha256=...`` (and pip's other hash names) must be its hash's hex digits:
    pip would fail the download for any other; here it is one line before any request."""
    bare, _, fragment = url.partition("#")
    for part in fragment.split("&"):
        algo, _, digest = part.partition("=")
        size = HEX_DIGITS.get(algo)
        if size and not re.fullmatch(f"[0-9a-fA-F]{{{size}}}", digest):
            raise RequirementError(
                f"{where}: {name} @ {redact_url(bare)}: #{part} is not a valid hash fragment; "
                f"give #{algo}= and {size} hex digits"
            )


def for_pip(text: str, options: Sequence[str] = ()) -> bool:
    """A requirement that only pip reads: a VCS or file: URL, or a local path; or one with
    pip's options for its build (``--config-settings``, ``--global-option``), which its
    line keeps (its files still come through segfetch's index)."""
    own = any(o.partition("=")[0] in ("--config-settings", "--global-option") for o in options)
    return own or text.startswith((*VCS, "file:")) or local_path(text) is not None


def local_path(text: str) -> str | None:
    """The path a requirement names, if it looks like one (as pip's ``_looks_like_path``:
    a separator in it, or a leading dot; or an archive on disk). Else None."""
    head = re.split(r"\s+;|;\s", text, maxsplit=1)[0].strip()
    if "://" in head or " @ " in text or text.startswith((*VCS, "file:")):
        return None
    head = re.sub(r"(.)\[[^\]]+\]$", r"\1", head)  # PATH[extras], as pip's _strip_extras
    seps = (os.sep, os.altsep) if os.altsep else (os.sep,)
    looks = head.startswith(".") or any(s in head for s in seps)
    return head if looks or (head.endswith(ARCHIVES) and Path(head).is_file()) else None


def name_of_url(url: str, where: str) -> str:
    """The project a bare URL of a distribution names, by its file name."""
    filename = unquote(urlsplit(url.split(" ", 1)[0]).path.rsplit("/", 1)[-1])
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[0])
        return str(parse_sdist_filename(filename)[0])
    except (InvalidWheelFilename, InvalidSdistFilename):
        raise RequirementError(
            f"{where}: cannot tell the project of {filename!r}; write it as NAME @ URL"
        ) from None


def format_control(value: str, target: set[str], other: set[str]) -> None:
    """``--only-binary`` / ``--no-binary`` VALUE, as pip's handle_mutual_excludes."""
    for word in value.split(","):
        word = word.strip()
        if word == ":all:":
            target.clear()
            other.clear()
            target.add(":all:")
        elif word == ":none:":
            target.clear()
        elif word:
            key = canonicalize_name(word)
            other.discard(key)
            target.add(key)
