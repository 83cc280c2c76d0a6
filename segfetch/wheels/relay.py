"""A byte range of a file ``serve`` holds no copy of, relayed from the upstream as it comes.

uv reads a wheel's METADATA from the end of the zip with ranges, where the index gives no
``.metadata``. Served from the verified file only, such a range waited for the whole wheel:
past uv's timeout on a slow uplink (four times 30 s, then it streamed the wheel), and the
whole wheel crossed the uplink for a dry run. Relayed, only the range crosses; its bytes are
the upstream's, unchecked, as a client asking the upstream itself gets them.
"""

from __future__ import annotations

import httpx
import trio

from segfetch.errors import is_http_url
from segfetch.wheels.httpd import OCTETS, Cut, Reply, Request


def relayable(url: str, request: Request) -> str | None:
    """The Range of a request to relay: one range of a GET, without If-Range (its ETag is
    ours, the sha256, not the upstream's), of a file on an http(s) upstream."""
    asked = request.headers.get("range")
    if request.head or asked is None or "if-range" in request.headers or "," in asked:
        return None
    return asked if is_http_url(url) else None


async def relay_range(
    client: httpx.AsyncClient, url: str, asked: str, reply: Reply, timeout: float
) -> bool:
    """Send the upstream's 206 to ``Range: asked`` as it comes; False, with nothing sent,
    where it answers otherwise (another status, several parts, a coding) or not within
    ``timeout``: the caller then sends the range from the verified file, as ever."""
    headers = {"Range": asked, "Accept-Encoding": "identity"}
    try:
        async with client.stream("GET", url, headers=headers, follow_redirects=True) as r:
            where = r.headers.get("Content-Range", "")
            coded = r.headers.get("Content-Encoding", "identity").lower() != "identity"
            if r.status_code != 206 or not where.startswith("bytes ") or coded:
                return False
            length = [("Content-Length", v)] if (v := r.headers.get("Content-Length")) else []
            await reply.start(206, [("Content-Type", OCTETS), ("Content-Range", where), *length])
            with trio.move_on_after(timeout) as quiet:  # (renewed by every piece)
                async for chunk in r.aiter_raw():
                    await reply.body(chunk)
                    quiet.deadline = trio.current_time() + timeout
            if quiet.cancelled_caught:
                raise Cut(f"{url}: the upstream's range went quiet")
            await reply.end()
            return True
    except httpx.HTTPError as exc:
        if reply.started:
            raise Cut(f"{url}: the upstream's range was cut short ({exc})") from None
        return False
