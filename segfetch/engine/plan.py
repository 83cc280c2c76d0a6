"""The segment planner: which bytes each connection fetches next. Pure: no I/O, no clock.

The file's missing bytes are cut into about one piece per connection. A connection that
finishes its piece takes the next one, cut down to its fair share of the work left when that
is smaller (so the connections end together, rather than the last round of whole pieces
leaving some idle); when none is left it steals the back half of the largest range still in
flight (all of a slow one's rest too small to halve again), so the tail never waits on one
slow connection. Bytes are in exactly one place at all times: done, in flight (``[pos,
end)`` of a segment) or pending.

Stealing cuts the victim's open response, and the bytes already on their way to it are
lost: so a range is stolen only when its connection would take longer than ``steal_after``
seconds to finish it at its current rate (on a fast link, never: the cut would cost more
than it saves).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from segfetch.engine.ranges import RangeSet, Span


@dataclass(eq=False)
class Segment:
    """A range a connection is fetching: ``[pos, end)`` is still to come."""

    pos: int
    end: int
    since: float = 0.0  # when the current response began
    got: int = 0  # bytes of the current response so far
    last: float = 0.0  # when its latest bytes arrived
    reads: int = 0  # reads that brought bytes, for the usual gap between them
    asked: float = 0.0  # when the request for the current response went out
    # As a steal is weighed: bytes of its answer already here, unread (its socket's receive
    # queue), and the most that queue may hold now (its receive buffer; 0: unknown)
    unread: int = 0
    room: int = 0
    # Two checkpoints (time, got) about RECENT apart: the latest rate is measured from the
    # older one, so a connection that slowed after a fast start shows as slow (``begin``).
    marks: tuple[tuple[float, int], tuple[float, int]] = ((0.0, 0), (0.0, 0))

    def begin(self, now: float) -> None:
        """A response begins: its rate is measured from here."""
        self.since, self.got, self.reads = now, 0, 0
        self.marks = ((now, 0), (now, 0))

    def waiting(self) -> bool:
        """Asked, and no answer streaming yet."""
        return self.asked > self.since

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def silent(self, now: float) -> bool:
        """A body that flowed, then went quiet for several times its usual gap between reads
        (a fading wifi link sends no reset: it just goes quiet). Waiting for the head is
        the timeout's business."""
        if self.reads == 0:
            return False
        return now - self.last > self.quiet_limit()

    def quiet_limit(self) -> float:
        """Seconds of silence that count as silent for this body (see ``silent``)."""
        usual = (self.last - self.since) / self.reads if self.reads else 0.0
        return max(SILENT_MIN, SILENT_GAPS * usual)

    def settled(self, now: float) -> bool:
        """Measured over a latest window of its own, and not silent: its rate is known."""
        return self.marks[0][0] > self.since and not self.silent(now)

    def seconds_left(self, now: float) -> float:
        """At the current response's rate, or its latest where that is slower; unknown
        (infinite) before its first bytes. (A latest window with no bytes is a silence:
        ``hedge``'s business, not a rate.)"""
        elapsed = now - self.since
        if self.got <= 0 or elapsed <= 0:
            return float("inf")
        left = self.remaining * elapsed / self.got
        (at, got), _ = self.marks
        if at > self.since and self.got > got:
            left = max(left, self.remaining * (now - at) / (self.got - got))
        return left


SILENT_MIN = 1.0  # seconds: below this, quiet is ordinary jitter (and a new connection's wait)
SILENT_GAPS = 8  # times the usual gap between reads
RECENT = 1.0  # seconds: a rate's latest window is one to two of these long
SLOW_LEFT = 2.0  # seconds: a range under two min_segments is stolen from if it needs longer
STEAL_LEAST = 8 * 1024  # bytes: ...down to this much (or one min_segment, if less)
UNREAD = 8  # a steal takes at least this many times what its victim already holds unread
BACKLOG = 4  # a receive queue fuller than 1/BACKLOG of its buffer: its server waits for us
SLIVER = 8  # a fair-share cut leaves no rest below min_segment / SLIVER on its own
ALONE = 2  # a silent body with no other bytes coming: hedged after this many quiet limits
HEAD_WAIT = 3.0  # seconds without an answer, while other connections bring bytes
STRAGGLE = 16  # a body needing this many times longer than a fresh connection would...
STRAGGLE_MIN = 8.0  # ...and more than this many seconds is asked again,
STRAGGLE_AFTER = 4.0  # ...once its answer has come for this long


def hedge(seg: Segment, now: float, heard: float, timeout: float, rate: float = 0.0) -> str | None:
    """Why to drop seg's response and ask its remaining range again on a new connection, or
    None to let it be.

    ``heard``: when the latest bytes arrived on any connection. Bytes on other connections
    after seg went quiet show the link lives: hedge as soon as seg is silent. When nothing
    else comes (seg alone, or the whole link quiet), the link may be down: wait twice as
    long, still well before the timeout (a third of it at most), which stays the last resort.
    The same for an answer that does not come while others bring bytes (a server that
    serves one connection at a time). ``rate``: what a fresh connection would get, its
    share of the file's bytes/s so far: a body that trickles far slower could hold up the
    end, however steadily it flows (after STRAGGLE_AFTER seconds: a new connection's slow
    start is not a trickle).
    """
    if seg.remaining <= 0:
        return None
    if seg.waiting():
        late = now - seg.asked  # (bytes came on other connections since it was asked)
        return f"had no answer in {late:.1f} s" if heard > seg.asked and late > HEAD_WAIT else None
    if seg.silent(now):
        quiet = now - seg.last
        if heard > seg.last + SILENT_MIN or quiet > min(timeout / 3, ALONE * seg.quiet_limit()):
            return f"went silent for {quiet:.1f} s"
        return None
    left = seg.seconds_left(now)
    fresh = SILENT_MIN + seg.remaining / rate if rate > 0 else float("inf")
    if now - seg.since > STRAGGLE_AFTER and left > max(STRAGGLE_MIN, STRAGGLE * fresh):
        return f"slowed to {seg.got / (now - seg.since):.0f} B/s"
    return None


class Planner:
    def __init__(
        self,
        size: int,
        done: RangeSet,
        *,
        pieces: int,
        min_segment: int,
        steal_after: float = 0.0,
        first: Span | None = None,
    ) -> None:
        """``first``: a range the first request already asked for; it stays whole."""
        if size < 0 or pieces < 1 or min_segment < 1:
            raise ValueError("size >= 0, pieces >= 1 and min_segment >= 1")
        self.size = size
        self.done = done
        self.min_segment = min_segment
        self.steal_after = steal_after
        self.active: list[Segment] = []
        if first is not None and first.length() > 0:
            rest = RangeSet(done)
            rest.add(*first)
            # The other connections share the rest; the first joins in by stealing once its
            # (small) range is done, rather than leave a last piece waiting for it.
            others = max(1, pieces - 1)
            self.pending = [first, *_split(rest.gaps(size), others, min_segment)]
        else:
            self.pending = _split(done.gaps(size), pieces, min_segment)

    @property
    def complete(self) -> bool:
        return not self.pending and not self.active and self.done.total() == self.size

    def take(
        self, at: int | None = None, now: float = 0.0, sharers: int = 0, settled: bool = False
    ) -> Segment | None:
        """Work for an idle connection, or None when there is nothing worth taking.

        ``at`` claims the pending piece that starts at that offset (the probe's request
        already asked for it). ``now`` is the clock the segments' ``since`` was read from.
        ``sharers``: how many connections will share the rest, this one included (those
        between two pieces hold no segment, so the active ones alone undercount them).
        ``settled``: only from a victim whose rate is known (``Segment.settled``), for a
        taker that looks again while it waits, rather than on finishing a range.
        """
        if self.pending:
            index = 0
            if at is not None:
                index = next(i for i, p in enumerate(self.pending) if p.start == at)
            piece = self.pending.pop(index)
            if at is None:
                piece = self._fair(piece, max(sharers, len(self.active) + 1))
            return self._start(piece.start, piece.end)
        victim = max(
            (s for s in self.active if self._stealable(s, now) and (s.settled(now) or not settled)),
            key=lambda s: s.remaining,
            default=None,
        )
        if victim is None:
            return None
        taken = victim.remaining // 2
        if victim.remaining - taken < min(self.min_segment, STEAL_LEAST):
            taken = victim.remaining  # a slow rest too small to halve again: all of it
        mid = victim.end - taken
        end, victim.end = victim.end, mid
        return self._start(mid, end)

    def _stealable(self, seg: Segment, now: float) -> bool:
        """Whether half of seg's range is worth a request of its own: its connection is
        measured to need more than ``steal_after`` seconds for it (not one whose answer has
        not begun: its rate is unknown, and the server sends all it was asked for), and two
        min_segments are left; or, on a connection measured to need more than SLOW_LEFT
        seconds, STEAL_LEAST (a slow connection holding one of the last fair shares, which
        are under two; the tail of a range it was fast on at first; a trickle: halved at each
        look until it ends within SLOW_LEFT). And not from a connection whose server waits
        for us: one whose receive queue is fuller than 1/BACKLOG of its buffer. Its slowness
        is our reader's (a busy process, loopback), which reads a new connection no faster,
        and the cut throws away all the server sent past it: that full queue and the
        server's send buffer (from nginx on loopback, under load: the whole stolen half,
        every time). Nor unless the half taken is UNREAD times what the victim holds
        unread."""
        left = seg.seconds_left(now)
        if not self.steal_after < left < float("inf"):
            return False
        if seg.unread * UNREAD > seg.remaining // 2 or seg.unread * BACKLOG > seg.room > 0:
            return False
        if seg.remaining >= 2 * self.min_segment:
            return True
        return seg.remaining >= min(self.min_segment, STEAL_LEAST) and left > SLOW_LEFT

    def advance(self, seg: Segment, n: int) -> int:
        """Record that n bytes arrived at seg.pos; returns how many of them belong to seg."""
        n = max(0, min(n, seg.remaining))
        self.done.add(seg.pos, seg.pos + n)
        seg.pos += n
        seg.got += n
        return n

    def heard(self, seg: Segment, now: float) -> None:
        """A read brought bytes for seg at ``now``."""
        seg.last = now
        seg.reads += 1
        _, newer = seg.marks
        if now - newer[0] >= RECENT:
            seg.marks = (newer, (now, seg.got))

    def release(self, seg: Segment) -> None:
        """The connection stops working on seg; what it did not fetch goes back to pending."""
        self.active.remove(seg)
        if seg.remaining > 0:
            self.pending.insert(0, Span(seg.pos, seg.end))

    def _fair(self, piece: Span, sharers: int) -> Span:
        """The front of piece, no more than the taker's share of all the work left.

        With equal rates, connections that each hold their share end together. A share
        below min_segment is not cut; the cut-off rest joins the next pending piece when
        they touch. A rest that cannot may be under min_segment, never under a SLIVER-th
        of it. The last shares fall under two min_segments: see ``_stealable``.
        """
        work = piece.length() + sum(p.length() for p in self.pending)
        work += sum(s.remaining for s in self.active)
        share = -(-work // sharers)
        if share < self.min_segment or piece.length() <= share:
            return piece
        cut = piece.start + share
        if self.pending and self.pending[0].start == piece.end:
            self.pending[0] = Span(cut, self.pending[0].end)
        elif piece.end - cut < self.min_segment // SLIVER:
            return piece  # a rest this small is not worth a request of its own
        else:
            self.pending.insert(0, Span(cut, piece.end))
        return Span(piece.start, cut)

    def _start(self, start: int, end: int) -> Segment:
        seg = Segment(start, end)
        self.active.append(seg)
        return seg


def _split(gaps: list[Span], pieces: int, min_segment: int) -> list[Span]:
    """Cut gaps into about ``pieces`` spans of similar size, none below min_segment."""
    missing = sum(g.length() for g in gaps)
    if missing == 0:
        return []
    target = max(min_segment, -(-missing // pieces))
    out: list[Span] = []
    for start, end in gaps:
        count = max(1, round((end - start) / target))
        step = (end - start) // count
        cuts = [start + i * step for i in range(count)] + [end]
        out.extend(Span(a, b) for a, b in pairwise(cuts))
    return out
