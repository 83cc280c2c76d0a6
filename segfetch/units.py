"""Values as people and indexes write them: sizes, rates, durations, sha256 digests. Pure."""

from __future__ import annotations

import hashlib
import math
import re

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(text: str) -> int:
    """'256K', '1M', '8MB', '1.5GiB', '300000' -> bytes. K/M/G are binary (KiB, MiB, GiB)
    unless written as kB/MB/GB, which are decimal, as on a speed test."""
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"not a size: {text!r} (try 256K, 8M or 1.5G)")
    number, prefix, suffix = float(m[1]), m[2].lower(), m[3].lower()
    base = 1000 if suffix == "b" and prefix else 1024
    return int(number * base ** _POWERS[prefix])


def parse_duration(text: str) -> float:
    """'100ms', '1.5s', '2m', '2' (seconds) -> seconds; finite and not negative."""
    t = text.strip().lower()
    try:
        if t.endswith("ms"):
            seconds = float(t[:-2]) / 1000
        elif t.endswith("m"):
            seconds = float(t[:-1]) * 60
        else:
            seconds = float(t.removesuffix("s"))
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"not a duration: {text!r} (try 100ms, 2s or 1m)")
    return seconds


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


# The hashes pip reads from a link's "#name=HEX", other than sha256; each one's hex digits.
OTHER_HASHES = ("sha512", "sha384", "sha224", "sha1", "md5")
HEX_DIGITS = {name: hashlib.new(name).digest_size * 2 for name in ("sha256", *OTHER_HASHES)}


def is_digest(name: str, text: str) -> bool:
    """Hex digits (either case) of the length of ``name`` (HEX_DIGITS): sha256 64, md5 32."""
    return len(text) == HEX_DIGITS[name] and all(c in "0123456789abcdefABCDEF" for c in text)


def link_hashes(url: str, strict: bool = False) -> dict[str, str]:
    """The hashes a URL's fragment names as pip reads them (``#sha256=HEX&md5=HEX``): name
    to lowercase hex, the first of each name. A value that is no such digest is left out,
    or (``strict``) a ValueError that says what it takes."""
    found: dict[str, str] = {}
    for part in url.partition("#")[2].split("&"):
        name, _, value = part.partition("=")
        name = name.lower()
        if name not in HEX_DIGITS or name in found:
            continue
        if is_digest(name, value):
            found[name] = value.lower()
        elif strict:
            raise ValueError(f"the URL's #{name}= takes {HEX_DIGITS[name]} hex digits")
    return found


def is_sha256(text: str) -> bool:
    """64 hex digits, either case: the one check of a sha256 as people and indexes write it."""
    return is_digest("sha256", text)


def plural(n: int, word: str) -> str:
    """'1 connection', '2 connections', '2 retries'."""
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word[:-1]}ies" if word.endswith("y") else f"{n} {word}s"
