"""One stream from byte 0: the plain path of a download, for a server that ignores ranges
(or stopped doing them mid-pass), or that sends no validator where no sha256 checks the
result (nothing could prove a resumed byte is of the same version). A failure starts the
stream over from byte 0, hashed afresh; the bytes on disk count for a later run only where
the saved state showed the very file (``keep``) and the answer carries its validators."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Iterable

import httpx

from segfetch.engine import coding, rules, versions
from segfetch.engine.body import body_chunks
from segfetch.engine.client import Location, RetryLater, backoff, classify, send
from segfetch.engine.failures import Failure
from segfetch.engine.options import Options
from segfetch.engine.result import Stats
from segfetch.engine.retry import Budget
from segfetch.engine.store import PartFile, PrefixHasher, State
from segfetch.errors import ServerError


async def fetch(
    client: httpx.AsyncClient,
    where: Location,
    options: Options,
    rng: random.Random,
    stats: Stats,
    part: PartFile,
    hasher: PrefixHasher,
    *,
    size: int | None,
    learned: int | None = None,
    learned_etag: str | None = None,
    keep: State | None,
    html_ok: bool,
    report: Callable[..., None],
    response: httpx.Response | None,
) -> int:
    """The file's size once it is all in ``part`` and hashed; ``response``: a first answer
    to use (None: ask). ``size``: what it must be (``--size``, the index); ``learned``: what
    an earlier answer said, for an answer that says no length (close-delimited, chunked):
    its body must end there."""
    budget = Budget(options.policy, rng)
    while True:
        try:
            if response is None:
                stats.requests += 1
                response = await send(client, where, {}, options.timeout)
            verdict = rules.judge_whole(
                response.status_code, response.headers, size, where.name, html_ok
            )
            if isinstance(verdict, rules.Fail):
                raise verdict.error
            if isinstance(verdict, rules.Retry):
                raise RetryLater(verdict.failure)
            known = next((n for n in (verdict.size, size, learned) if n is not None), None)
            seen = [(learned, learned_etag), *([(keep.size, keep.etag)] if keep else [])]
            _refuse_other_size_under_etag(response.headers, verdict.size, where.name, seen)
            if keep is not None and (verdict.coding or not _same(keep, response.headers, known)):
                keep = None  # another version than the saved state's: nothing of it kept
            decoder = coding.Decoder(verdict.coding) if verdict.coding else None
            args = part, hasher, stats, keep, where.name, report
            return await _stream(response, known, *args, decoder)
        except (RetryLater, httpx.TransportError) as exc:
            await backoff(budget, classify(exc, where.current), stats)
        finally:
            if response is not None:
                await response.aclose()
            response = None


def _refuse_other_size_under_etag(
    headers: httpx.Headers, size: int | None, name: str, seen: list[tuple[int | None, str | None]]
) -> None:
    """An answer of another size under a strong ETag an earlier answer (or run) gave with
    its size: a wrong answer, tried again (rules.same_etag_other_size)."""
    etag, _ = versions.validators(headers)
    for known_size, known_etag in seen:
        if known_size is None:
            continue
        known = versions.Known(known_size, known_etag, None)
        if wrong := rules.same_etag_other_size(known, etag, size, name):
            raise RetryLater(wrong.failure)


async def ends_at(
    client: httpx.AsyncClient,
    where: Location,
    options: Options,
    rng: random.Random,
    stats: Stats,
    size: int,
    validator: str | None,
) -> bool:
    """Whether the file ends at ``size``: what follows is asked (``bytes=size-``), and the
    answer judged by rules.end_confirmed."""
    budget = Budget(options.policy, rng)
    headers = {"Range": f"bytes={size}-"} | ({"If-Range": validator} if validator else {})
    while True:
        stats.requests += 1
        try:
            response = await send(client, where, headers, options.timeout)
            break
        except RetryLater as exc:
            await backoff(budget, exc.failure, stats)
    await response.aclose()
    return rules.end_confirmed(response.status_code, response.headers, size)


def _same(keep: State, headers: httpx.Headers, size: int | None) -> bool:
    """The answer is the saved state's file: its validators, and not another size."""
    etag, modified = versions.validators(headers)
    known = versions.Known(keep.size, keep.etag, keep.last_modified)
    return size in (None, keep.size) and versions.same_version(known, etag, modified, keep.size)


async def _stream(
    response: httpx.Response,
    size: int | None,
    part: PartFile,
    hasher: PrefixHasher,
    stats: Stats,
    keep: State | None,
    name: str,
    report: Callable[..., None],
    decoder: coding.Decoder | None,
) -> int:
    """``decoder``: the body came in a coding (its Content-Length is not the file's); the
    file's ``size``, if known, bounds what it may decode to (a gzip bomb)."""
    stats.resumed = 0  # every byte comes again in this stream
    size = keep.size if keep is not None else size  # the saved bytes past the end are its
    if keep is None:
        part.reset()  # no resume without ranges
    else:
        part.open()
    hasher.reset()  # from byte 0: a stream before this one may have been another version
    stats.received = pos = 0
    stats.size = size
    stats.streaming(+1)
    try:
        async for raw in _decoded_chunks(body_chunks(response), decoder):
            for chunk in raw:
                if size is not None and pos + len(chunk) > size:
                    raise ServerError(f"{name} sent more than {size} bytes{_decoded(decoder)}")
                part.write(pos, chunk)
                hasher.feed(pos, chunk)
                pos += len(chunk)
                stats.received = pos
                report()
    except coding.Damaged as exc:
        raise RetryLater(Failure(f"{name}: {exc}", retry=True)) from None
    finally:
        stats.streaming(-1)
        if keep is not None and pos:  # what arrived counts for the next run too
            keep.done.add(0, pos)
            part.save_synced(keep)
    if size is not None and pos != size and decoder is not None:  # (all of its stream came)
        raise ServerError(
            f"{name} is {pos} bytes{_decoded(decoder)}, but {size} were expected; "
            "check the size or the URL"
        )
    if size is not None and pos != size:
        raise RetryLater(Failure(f"{name}: body ended at {pos} of {size} bytes", True))
    await hasher.advance(pos)
    stats.validators = versions.validators(response.headers)
    report(force=True)
    return pos


async def _decoded_chunks(
    chunks: AsyncIterator[bytes], decoder: coding.Decoder | None
) -> AsyncIterator[Iterable[bytes]]:
    """The body's pieces as the file's bytes: decoded, with what the decoder still held
    at the end."""
    async for raw in chunks:
        yield decoder.feed(raw) if decoder else (raw,)
    if decoder is not None and (rest := decoder.end()):
        yield (rest,)


def _decoded(decoder: coding.Decoder | None) -> str:
    return f" once its {decoder.coding} coding is decoded" if decoder else ""
