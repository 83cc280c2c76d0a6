"""How many connections a host gets, when segfetch chooses (``-n auto``). Pure: rates in,
a connection count out; no clock, no socket.

Additive increase, multiplicative decrease, with a slow start, as TCP does with its window:
start with four connections and grow while the total rate keeps growing with them (short
measurements, each begun once every new connection streams; a step on trial is judged by the
connections that streamed all through one, not by those still opening): by 4x at first and
after a step that paid off almost in full, else by 2x; once more connections stop
buying more (a shared cap, a CPU-bound fast link: "the knee"), step back and probe one more
now and then, in case the link changed. A host that pushes back (429, 503, refused
connections) gets back the count that streamed without refusals, or half of what was in
use, and no probing for a long while.
"""

from __future__ import annotations

from dataclasses import dataclass

# Connections to begin with: 4 costs a shared or fast link nothing it would not spend
# anyway (auto settles at 4 on both, S4 and S8), and saves a step on a capped one (S1).
START = 4
EPOCH = 0.3  # seconds of transfer per measurement
# Before the first knee or refusal (slow start) a measurement is shorter: on a 4 MB file at
# a per-connection cap, the ramp from 2 to 16 is most of the download at 0.3 s a step.
SLOW_START_EPOCH = 0.1
# The first measurement only sets the rate the first step is judged against (the first step
# is taken whatever it shows, unless the connections are already fast), so it may be shorter
# still: a capped link's 4 MB file loses 3/4 of the rate for as long as it lasts.
FIRST_EPOCH = 0.03
# An increase from a to b connections must raise the rate by at least this share of the
# (b - a) / a it would bring on a link capped per connection; else it bought too little.
GAIN = 0.5
PROBE_EVERY = 8  # epochs at the knee between probes of one more connection
QUIET_AFTER_REFUSAL = 100  # epochs (30 s) without probes once the host refused a count
LINEAR = 0.8  # an increase that bought this share of its ideal: grow by 4x next, not 2x
# The first step is also 4x: on a link capped per connection each step costs an epoch, and a
# 4 MB file there is done in a second; a shared link loses only a few openings (OPENING in
# slots.py meters them), and a host that refuses gets back the count that streamed.
# Connections that each move this much are not held back by a cap per connection: the CPU
# sets the pace, so slow start ends there (the knee: one more is probed now and then). More
# only cost CPU and, cut back at the end, bytes twice (nginx on loopback, 500 MB: 16 on
# trial cost 2.57 CPU-s per GB against 2.26; 8: 2.33 against -n 4's 2.12, 1.4 % twice).
FAST_CONNECTION = 16 * 1024 * 1024  # bytes/s


@dataclass
class Controller:
    cap: int  # never more than this
    limit: int = START
    knee: int | None = None  # where more connections stopped helping
    _before: tuple[int, float] | None = None  # (limit, rate) before the increase on trial
    _settling: bool = True  # the epoch after a change: new connections are still opening
    _calm: int = 0  # epochs at the knee since the last probe
    _linear: bool = True  # the last increase paid off almost in full (none yet: 4x)
    _first: bool = True  # nothing measured yet

    def __post_init__(self) -> None:
        self.limit = max(1, min(self.limit, self.cap))

    @property
    def period(self) -> float:
        """Seconds of transfer per measurement."""
        if self.knee is not None:
            return EPOCH
        return FIRST_EPOCH if self._first else SLOW_START_EPOCH

    @property
    def to_remember(self) -> int | None:
        """The count to begin with next time on this host: where it settled (a knee, a
        refusal, the cap), not a probe still on trial; None if slow start ended with the
        file (a small file's four, remembered, would start a large one at a knee of four)."""
        if self.knee is None and (self._before is not None or self.limit < self.cap):
            return None
        return self._before[0] if self._before is not None else self.limit

    @property
    def settling(self) -> bool:
        return self._settling

    def settled(self) -> None:
        """Every connection of the new count streams: measure from now, not an epoch later."""
        self._settling = False

    def epoch(self, rate: float, busy: int) -> int:
        """One measurement: the total rate (bytes/s) over the epoch, and how many
        connections streamed all through it. Returns the new limit."""
        if self._settling:
            self._settling = False
            return self.limit
        if self._before is not None:
            limit, before = self._before
            if busy <= limit:
                return self.limit  # the added connections are still opening: too soon to tell
            # Judged by those that streamed: with a long round trip, 16 on trial may take a
            # while to open, and a capped link's rate grows with each one that streams.
            self._before = None
            ideal = (min(busy, self.limit) - limit) / limit
            if rate < before * (1 + GAIN * ideal):
                self.knee = limit
                return self._set(limit)
            self._linear = busy >= self.limit and rate >= before * (1 + LINEAR * ideal)
        if busy < self.limit:
            return self.limit  # too little work to fill the connections: it shows nothing
        self._first = False
        if self.limit >= self.cap:
            return self.limit
        if self.knee is None and rate >= FAST_CONNECTION * self.limit:
            self.knee = self.limit  # each connection is already fast: its knee, probed slowly
            return self.limit
        if self.knee is not None:
            self._calm += 1
            if self._calm < PROBE_EVERY:
                return self.limit
            self._calm = 0
            grown = self.limit + 1
        else:
            grown = self.limit * (4 if self._linear else 2)
        self._before = (self.limit, rate)
        return self._set(min(self.cap, grown))

    def pushback(self, busy: int) -> int:
        """The host refused or asked us to slow down: back to the count before an increase
        still on trial (it streamed without refusals), else half of what was in use. The
        other refusals of the same burst change nothing more."""
        if self._settling and self.knee is not None and self._before is None:
            return self.limit
        if self._before is not None:
            self.knee = self._before[0]
        else:
            self.knee = max(1, busy // 2)
        self._before = None
        self._calm = -QUIET_AFTER_REFUSAL  # it showed its limit: no probing into it soon
        return self._set(self.knee)

    def _set(self, limit: int) -> int:
        if limit != self.limit:
            self._settling = True
        self.limit = limit
        return limit
