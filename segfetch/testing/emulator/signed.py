"""Redirects to expiring signed URLs (the `expire` fault), as object stores and release-asset
hosts hand them out: the file's URL answers 302 to /signed/<token>/<path>; the token serves a
bounded number of requests and of body bytes, then answers 403 until a new request to the
file's URL gives a new one. No sockets.

Tokens and their allowances are drawn from (seed, path, token number): the n-th token of a
path is the same in every run.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from segfetch.testing.emulator.faults import BODY_FAULTS, Fault, Link, Plan

PREFIX = "/signed/"


@dataclass
class Token:
    path: str  # the file it opens
    requests_left: int | None  # None: any number
    bytes_left: int | None  # body bytes it may still serve; None: any number

    @property
    def expired(self) -> bool:
        return self.requests_left == 0 or self.bytes_left == 0


def parse(path: str) -> tuple[str, str] | None:
    """(token, file path) of a signed path, or None for any other path."""
    if not path.startswith(PREFIX):
        return None
    token, slash, rest = path[len(PREFIX) :].partition("/")
    return (token, "/" + rest) if token and slash else None


class Tokens:
    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}
        self._issued: Counter[str] = Counter()  # tokens per file path

    def issue(self, link: Link, fault: Fault, path: str) -> str:
        """A new token for `path`; returns the signed path to redirect to."""
        n = self._issued[path]
        self._issued[path] += 1
        rng = random.Random(f"{link.seed}:{path}:{n}:expire")
        token = rng.randbytes(8).hex()
        budget = None if fault.every is None else max(1, int(fault.every * (0.5 + rng.random())))
        self._tokens[token] = Token(path, fault.after or None, budget)
        return f"{PREFIX}{token}{path}"

    def admit(self, token: str, path: str) -> Token | None:
        """The token, counting one more request on it; None if unknown or expired."""
        t = self._tokens.get(token)
        if t is None or t.path != path or t.expired:
            return None
        if t.requests_left is not None:
            t.requests_left -= 1
        return t

    @staticmethod
    def spend(t: Token, fault: Fault, plan: Plan) -> None:
        """Reserve the body's bytes from the token's allowance; a body that would go past it
        is cut where it runs out (unless a request fault shaped it: then it is only spent)."""
        if t.bytes_left is None:
            return
        length = plan.stop - plan.start
        if length > t.bytes_left and (plan.fault is None or plan.kind in BODY_FAULTS):
            plan.fault, plan.fault_at = fault, t.bytes_left
            length = t.bytes_left
        t.bytes_left = max(0, t.bytes_left - length)
