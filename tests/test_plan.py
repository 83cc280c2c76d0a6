"""The planner, driven by random schedules: bytes are never lost, duplicated or overlapped."""

from hypothesis import given
from hypothesis import strategies as st

from segfetch.engine.plan import Planner, Segment
from segfetch.engine.ranges import RangeSet, Span


def check_tiling(p: Planner) -> None:
    """done + in flight + pending cover [0, size) exactly once."""
    owners = [0] * p.size
    for s, e in p.done:
        for b in range(s, e):
            owners[b] += 1
    for seg in p.active:
        assert seg.pos <= seg.end
        for b in range(seg.pos, seg.end):
            owners[b] += 1
    for s, e in p.pending:
        for b in range(s, e):
            owners[b] += 1
    assert owners == [1] * p.size


@st.composite
def schedules(
    draw: st.DrawFn,
) -> tuple[int, list[tuple[int, int]], int, int, list[tuple[str, int, int]]]:
    size = draw(st.integers(0, 3000))
    done = draw(st.lists(st.tuples(st.integers(0, size), st.integers(0, 400)), max_size=5))
    pieces = draw(st.integers(1, 16))
    min_segment = draw(st.integers(1, 300))
    ops = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["take", "data", "release"]),
                st.integers(0, 15),
                st.integers(0, 500),
            ),
            max_size=200,
        )
    )
    spans = [(s, min(size, s + n)) for s, n in done]
    return size, spans, pieces, min_segment, ops


@given(schedules())
def test_random_schedules_tile_the_file(
    case: tuple[int, list[tuple[int, int]], int, int, list[tuple[str, int, int]]],
) -> None:
    size, done, pieces, min_segment, ops = case
    p = Planner(size, RangeSet(done), pieces=pieces, min_segment=min_segment)
    check_tiling(p)
    workers: dict[int, Segment] = {}
    for op, who, n in ops:
        seg = workers.get(who)
        if op == "take" and seg is None:
            got = p.take()
            if got is not None:
                workers[who] = got
        elif op == "data" and seg is not None:
            before = seg.pos
            kept = p.advance(seg, n)
            assert kept == min(n, seg.end - before) and seg.pos == before + kept
            if seg.remaining == 0:
                p.release(workers.pop(who))
        elif op == "release" and seg is not None:
            p.release(workers.pop(who))
        check_tiling(p)
    # Run the rest to completion with four connections: it always finishes.
    for who in range(4):
        if who not in workers and (got := p.take()) is not None:
            workers[who] = got
    rounds = 0
    while workers:
        rounds += 1
        assert rounds < 100_000
        for who, seg in list(workers.items()):
            p.advance(seg, 37)
            if seg.remaining == 0:
                p.release(seg)
                nxt = p.take()
                if nxt is None:
                    del workers[who]
                else:
                    workers[who] = nxt
        check_tiling(p)
        if not workers and p.pending:
            workers[0] = p.take()  # type: ignore[assignment]
    assert p.complete and p.done.total() == size


def test_initial_split_is_even_and_respects_min_segment() -> None:
    p = Planner(8_000_000, RangeSet(), pieces=8, min_segment=256 * 1024)
    assert [s.length() for s in p.pending] == [1_000_000] * 8
    small = Planner(300_000, RangeSet(), pieces=8, min_segment=256 * 1024)
    assert len(small.pending) == 1


def test_split_skips_done_ranges() -> None:
    p = Planner(1000, RangeSet([(0, 100), (500, 600)]), pieces=2, min_segment=10)
    covered = sorted((s.start, s.end) for s in p.pending)
    assert covered[0][0] == 100 and covered[-1][1] == 1000
    assert all(not (s < 600 and e > 500) for s, e in covered)


def test_idle_connection_steals_back_half_of_largest() -> None:
    p = Planner(1000, RangeSet(), pieces=1, min_segment=100)
    a = p.take()
    assert a is not None and (a.pos, a.end) == (0, 1000)
    p.advance(a, 200)
    b = p.take(now=1.0)
    assert b is not None
    assert (a.pos, a.end) == (200, 600) and (b.pos, b.end) == (600, 1000)


def one_in_flight(got: int) -> tuple[Planner, Segment]:
    """10 MB in two pieces: the first done, the second ``got`` bytes in since 0 (5 MB long)."""
    p = Planner(10_000_000, RangeSet(), pieces=2, min_segment=1000, steal_after=1.0)
    a, b = p.take(now=0.0), p.take(now=0.0)
    assert a is not None and b is not None
    p.advance(a, a.remaining)
    p.release(a)
    p.advance(b, got)
    return p, b


def test_a_range_whose_answer_has_not_begun_is_not_stolen_from() -> None:
    # Its rate is unknown (not infinitely slow), and the server sends all it was asked:
    # from nginx on loopback, a stolen range was stolen from again and again before its
    # answer came, every half sent twice (a 100 MB file at -n 16: 1.24 x its size).
    p, b = one_in_flight(1_000_000)  # 1 MB/s: 4 s left
    c = p.take(now=1.0)
    assert c is not None and (c.pos, c.end) == (8_000_000, 10_000_000)
    p.advance(b, b.remaining)
    p.release(b)
    assert p.take(now=1.5) is None  # c has not begun: nothing is measured to need long
    p.advance(c, 100_000)  # since 0, as read at 1.5: 1.9 MB at 67 kB/s, 28 s
    d = p.take(now=1.5)
    assert d is not None and d.pos == 9_050_000


def test_no_steal_below_twice_min_segment() -> None:
    p = Planner(1000, RangeSet(), pieces=1, min_segment=300)
    a = p.take()
    assert a is not None
    p.advance(a, 500)
    assert p.take() is None


def test_a_connection_whose_server_waits_for_us_is_not_stolen_from() -> None:
    # Its receive queue is full: our reader is the slow side (nginx on loopback under load:
    # the stolen half was in the socket buffers already, sent twice every time), and it
    # reads a new connection no faster. Nor when the victim holds unread more than an
    # UNREAD-th of the half taken.
    from segfetch.engine.plan import BACKLOG, UNREAD

    def victim(unread: int, room: int) -> tuple[Planner, Segment]:
        p, b = one_in_flight(1_000_000)  # 1 MB/s: 4 MB left, 4 s
        b.unread, b.room = unread, room
        return p, b

    p, b = victim(0, 0)  # unknown (no socket to ask): as before
    assert p.take(now=1.0) is not None and b.end == 8_000_000
    p, b = victim(64 * 1024, 4 << 20)  # a link that trickles: the reader keeps up
    assert p.take(now=1.0) is not None
    p, b = victim(65_536, 131_072)  # full: the server waits for us
    assert 65_536 * BACKLOG > 131_072 and p.take(now=1.0) is None and b.end == 10_000_000
    p, b = victim(2_000_000 // UNREAD + 1, 32 << 20)  # more than the cut is worth
    assert p.take(now=1.0) is None and b.end == 10_000_000


def test_take_at_claims_the_probe_piece() -> None:
    p = Planner(1000, RangeSet([(0, 100)]), pieces=3, min_segment=10)
    first = p.take(at=100)
    assert first is not None and first.pos == 100


def test_release_returns_the_unfetched_rest() -> None:
    p = Planner(1000, RangeSet(), pieces=1, min_segment=10)
    a = p.take()
    assert a is not None
    p.advance(a, 250)
    p.release(a)
    assert [(s.start, s.end) for s in p.pending] == [(250, 1000)]
    assert p.done.total() == 250


def test_silent_is_several_usual_gaps_and_never_before_the_first_byte() -> None:
    from segfetch.engine.plan import SILENT_GAPS, SILENT_MIN, Segment

    seg = Segment(0, 100, since=10.0)
    assert not seg.silent(10_000.0)  # waiting for the head: the timeout's business
    seg.last, seg.reads = 20.0, 10  # a read every second
    assert not seg.silent(20.0 + SILENT_GAPS - 0.1)
    assert seg.silent(20.0 + SILENT_GAPS + 0.1)
    fast = Segment(0, 100, since=10.0, last=10.1, reads=100)  # a read every ms
    assert not fast.silent(10.1 + SILENT_MIN - 0.1)
    assert fast.silent(10.1 + SILENT_MIN + 0.1)


def test_a_silent_body_is_hedged_at_once_while_others_flow_later_alone() -> None:
    from segfetch.engine.plan import ALONE, SILENT_MIN, Segment, hedge

    assert SILENT_MIN == 1.0 and ALONE == 2  # the issue: "several times its usual gap"
    seg = Segment(0, 100, since=10.0, last=10.1, reads=100)  # a read every ms, then quiet
    quiet = 10.1 + SILENT_MIN + 0.1
    assert hedge(seg, quiet, heard=quiet, timeout=30.0)  # others flow: now
    assert not hedge(seg, quiet, heard=10.1, timeout=30.0)  # alone: not yet
    alone = 10.1 + ALONE * SILENT_MIN + 0.1
    assert hedge(seg, alone, heard=10.1, timeout=30.0)  # 2 s, not a third of the timeout
    assert hedge(seg, quiet, heard=10.1, timeout=3.0)  # a third of a short timeout is sooner
    slow = Segment(0, 100, since=0.0, last=10.0, reads=10)  # a read a second: 8 s is silent
    assert not hedge(slow, 17.0, heard=17.0, timeout=30.0)
    assert hedge(slow, 18.5, heard=18.5, timeout=30.0)
    assert not hedge(slow, 19.5, heard=10.0, timeout=30.0)  # alone: 2 x 8 s, capped at 10 s
    assert hedge(slow, 20.5, heard=10.0, timeout=30.0)
    seg.pos = seg.end  # nothing left to ask for: never
    assert not hedge(seg, 1000.0, heard=1000.0, timeout=30.0)


def test_an_answer_that_does_not_come_is_hedged_once_others_brought_bytes() -> None:
    from segfetch.engine.plan import HEAD_WAIT, Segment, hedge

    seg = Segment(0, 100, since=1.0, asked=2.0)  # asked again at 2.0, no answer yet
    assert seg.waiting()
    late = 2.0 + HEAD_WAIT + 0.1
    assert hedge(seg, late, heard=2.5, timeout=30.0) == f"had no answer in {HEAD_WAIT + 0.1:.1f} s"
    assert not hedge(seg, late, heard=1.9, timeout=30.0)  # nothing came since: the link?
    assert not hedge(seg, 2.0 + HEAD_WAIT - 0.1, heard=2.5, timeout=30.0)  # not yet
    seg.since = 2.2  # the answer came: the body's rules apply
    assert not seg.waiting()


def test_a_steady_trickle_is_hedged_only_when_far_slower_than_its_share() -> None:
    """``rate`` is a fresh connection's share of the file's rate (transfer.py divides by the
    connections streaming): connections slowed alike are never stragglers."""
    from segfetch.engine.plan import STRAGGLE, STRAGGLE_AFTER, STRAGGLE_MIN, Segment, hedge

    assert (STRAGGLE, STRAGGLE_MIN, STRAGGLE_AFTER) == (16, 8.0, 4.0)
    # 2 kB/s for 5 s, 250 kB left: 125 s more; a share of 1 MB/s: a fresh one ~1.25 s
    seg = Segment(0, 260_000, since=0.0, got=10_000, last=5.0, reads=50)
    seg.pos = 10_000
    assert hedge(seg, 5.0, heard=5.0, timeout=30.0, rate=1e6) == "slowed to 2000 B/s"
    assert not hedge(seg, 5.0, heard=5.0, timeout=30.0)  # no rate known: never
    young = Segment(0, 260_000, since=1.5, got=7_000, last=5.0, reads=35)  # 3.5 s: slow start?
    young.pos = 7_000
    assert not hedge(young, 5.0, heard=5.0, timeout=30.0, rate=1e6)
    # Capped alike (a shared link, a per-connection cap, -n 64): each gets its share, so
    # its time left is the fresh one's, never 16 times it.
    for n in (4, 16, 64):
        share = 4e6 / n
        alike = Segment(0, 2_000_000, since=0.0, got=int(share * 10), last=10.0, reads=100)
        alike.pos = alike.got
        assert not hedge(alike, 10.0, heard=10.0, timeout=30.0, rate=share)


def test_a_fast_connection_is_not_stolen_from() -> None:
    p, _ = one_in_flight(1_000_000)  # 1 MB/s since 0: its 4 MB left take 4 s
    assert p.take(now=1.0) is not None
    c, _ = one_in_flight(4_500_000)  # 4.5 MB/s since 0: 0.5 MB left, 0.1 s: a cut costs more
    assert c.take(now=1.0) is None


def test_auto_control_grows_while_it_pays_and_steps_back_at_the_knee() -> None:
    from segfetch.engine.control import START, Controller

    c = Controller(cap=32)
    assert c.limit == START == 4
    assert c.epoch(2e6, busy=4) == 4  # settling: the first epoch shows nothing
    assert c.epoch(2e6, busy=4) == 16  # then grow: 4x at first
    c.epoch(2e6, busy=16)  # settling
    assert c.epoch(8e6, busy=16) == 32  # 4x the rate, in full: grow fast again (capped)
    c.epoch(8e6, busy=32)
    assert c.epoch(8.4e6, busy=32) == 16  # twice the connections bought 5 %: back to the knee
    assert c.knee == 16
    c.epoch(8e6, busy=16)
    for _ in range(7):
        assert c.epoch(8e6, busy=16) == 16  # at the knee
    assert c.epoch(8e6, busy=16) == 17  # now and then, one more to see if the link changed
    assert c.pushback(busy=17) == 16  # refused while one more was on trial: back to 16
    assert c.pushback(busy=16) == 16  # the same burst of refusals: nothing more
    c.epoch(8e6, busy=16)  # settled
    assert c.pushback(busy=16) == 8  # refused again later: half of what was in use
    assert c.epoch(1e6, busy=1) == 8  # too little work to judge: unchanged


def test_auto_control_on_a_shared_cap_stays_small() -> None:
    from segfetch.engine.control import Controller

    c = Controller(cap=16)
    seen = []
    for _ in range(20):
        seen.append(c.epoch(1e6, busy=c.limit))
    assert max(seen[3:]) <= 5  # one step to 16 on trial, then the 4 it began with (5: a probe)
    assert c.limit == c.knee == 4


def test_auto_control_backs_out_of_an_increase_the_host_refuses() -> None:
    from segfetch.engine.control import Controller

    c = Controller(cap=16, limit=4)
    c.epoch(1e6, busy=4)  # settling
    assert c.epoch(1e6, busy=4) == 16  # on trial
    assert c.pushback(busy=8) == 4  # 503s: the 4 that streamed without refusals
    assert c.knee == 4
    assert c.pushback(busy=8) == 4  # more 503s of the same burst: nothing more


def _makespan(p: Planner, connections: int, rate: int) -> int:
    """Ticks until p is complete, with every connection fetching rate bytes a tick."""
    workers = [p.take(sharers=connections) for _ in range(connections)]
    ticks = 0
    while not p.complete:
        ticks += 1
        assert ticks < 100_000
        for i, seg in enumerate(workers):
            if seg is None:
                workers[i] = p.take(sharers=connections)
                continue
            p.advance(seg, rate)
            if seg.remaining == 0:
                p.release(seg)
                workers[i] = p.take(sharers=connections)
    return ticks


def test_the_last_round_is_cut_so_the_connections_end_together() -> None:
    # S7's shape: a 256 KiB first range, the rest in 15 pieces of ~529 KiB, 4 connections
    # at one rate. Whole pieces leave a last round of 3 for 4 connections: one idles for
    # half a piece (~3 % of the whole time); fair shares end within a few ticks.
    kib = 1024
    size, rate = 8 * 1024 * kib, 4 * kib
    p = Planner(size, RangeSet(), pieces=16, min_segment=256 * kib, first=Span(0, 256 * kib))
    ideal = size // (4 * rate)
    assert _makespan(p, 4, rate) <= ideal + 3


def test_a_share_below_min_segment_is_not_cut_and_a_cut_rest_joins_its_neighbour() -> None:
    p = Planner(1000, RangeSet(), pieces=4, min_segment=300)
    assert [s.length() for s in p.pending] == [333, 333, 334]
    a = p.take(sharers=4)  # a share of 250 is below 300: the whole piece
    assert a is not None and a.remaining == 333
    q = Planner(4000, RangeSet(), pieces=4, min_segment=100)
    b = q.take(sharers=8)  # 4000 / 8 = 500 of the first 1000; the rest joins the next
    assert b is not None and (b.pos, b.end) == (0, 500)
    assert [(s.start, s.end) for s in q.pending] == [(500, 2000), (2000, 3000), (3000, 4000)]


def test_a_cut_leaves_no_sliver_on_its_own() -> None:
    # Two pieces with a gap between them (the middle is done): the first one's rest cannot
    # join the second. A share 1 % short of it would leave a rest of a few bytes.
    p = Planner(3000, RangeSet([(1000, 1010)]), pieces=2, min_segment=80)
    assert [(s.start, s.end) for s in p.pending] == [(0, 1000), (1010, 3000)]
    whole = p.take(sharers=3)  # 2990 / 3 = 997: a rest of 3 bytes, under 80 / 8
    assert whole is not None and (whole.pos, whole.end) == (0, 1000)
    q = Planner(3000, RangeSet([(1000, 1010)]), pieces=2, min_segment=80)
    cut = q.take(sharers=4)  # 748: a rest of 252, worth its own request
    assert cut is not None and (cut.pos, cut.end) == (0, 748)
    assert [(s.start, s.end) for s in q.pending] == [(748, 1000), (1010, 3000)]


def test_a_slow_connection_is_stolen_from_below_two_min_segments() -> None:
    # The last fair shares are under two min_segments: a slow connection holding one would
    # keep the tail waiting. Measured to need more than SLOW_LEFT seconds, half is taken.
    from segfetch.engine.plan import SLOW_LEFT, STEAL_LEAST

    def holder() -> tuple[Planner, Segment]:
        p = Planner(1000, RangeSet(), pieces=1, min_segment=300, steal_after=1.0)
        a = p.take(now=0.0)
        assert a is not None
        p.advance(a, 500)  # since 0: 500 left, under 2 x 300
        return p, a

    p, a = holder()
    assert p.take(now=1.0) is None  # 500 B/s: 1 s left, not slow
    p, a = holder()
    b = p.take(now=5.0)  # 100 B/s: 5 s left
    # (Halved, its rest would be under one min_segment, never split again: all is taken.)
    assert (
        SLOW_LEFT < 5.0 and b is not None and (a.pos, a.end, b.pos, b.end) == (500, 500, 500, 1000)
    )
    # Under one min_segment too (a connection fast at first, slow now; a trickle: its tail
    # would hold up the end), down to STEAL_LEAST; below that, never worth a request.
    q = Planner(1_000_000, RangeSet(), pieces=1, min_segment=300_000, steal_after=1.0)
    b = q.take(now=0.0)
    assert b is not None
    q.advance(b, 800_000)  # 200 kB left
    assert q.take(now=1.0) is None  # 800 kB/s: 0.25 s left
    c = q.take(now=100.0)  # 8 kB/s: 25 s left
    assert c is not None and (b.pos, b.end, c.pos, c.end) == (800_000, 900_000, 900_000, 10**6)
    q.advance(b, 100_000 - STEAL_LEAST - 100)  # left to b: too little to halve again
    d = q.take(now=1000.0)  # slow: all of it is taken (b's answer is dropped)
    assert d is not None and (b.pos, b.end, d.pos, d.end) == (d.pos, d.pos, 891_708, 900_000)
    e = q.take(now=0.0)
    assert e is None and b.remaining == 0
    q.advance(c, 100_000 - STEAL_LEAST + 1)  # under STEAL_LEAST left to c
    assert q.take(now=1000.0) is None  # however slow


def test_a_connection_that_slowed_after_a_fast_start_is_weighed_by_its_latest_rate() -> None:
    # A server's buffers or a CDN's allowance: 1 MB in the first second, then 10 kB/s. By the
    # average since its start it would end half a second from now; by its latest, in 18 s.
    from segfetch.engine.plan import RECENT

    p = Planner(1_200_000, RangeSet(), pieces=1, min_segment=1000, steal_after=1.0)
    a = p.take(now=0.0)
    assert a is not None
    a.begin(0.0)
    t = 0.0
    for _ in range(10):  # 100 kB every 0.1 s
        t += 0.1
        p.advance(a, 100_000)
        p.heard(a, t)
    for _ in range(10 * int(2 * RECENT)):  # then 1 kB every 0.1 s
        t += 0.1
        p.advance(a, 1_000)
        p.heard(a, t)
    assert a.remaining == 180_000
    assert a.remaining * (t - a.since) / a.got < 1.0  # by the average since its start
    assert a.seconds_left(t) > 15  # by its latest 10 kB/s
    b = p.take(now=t)  # so half of it is taken
    assert b is not None and (a.end, b.pos, b.end) == (1_110_000, 1_110_000, 1_200_000)


def test_a_new_answer_is_measured_from_its_own_start() -> None:
    p = Planner(1_000_000, RangeSet(), pieces=1, min_segment=1000)
    a = p.take(now=0.0)
    assert a is not None
    a.begin(0.0)
    for t in (1.0, 2.0, 3.0):  # slow: 1 kB/s
        p.advance(a, 1_000)
        p.heard(a, t)
    a.begin(3.0)  # asked again (a retry): fast now, 100 kB in 0.5 s
    p.advance(a, 100_000)
    p.heard(a, 3.5)
    assert a.seconds_left(3.5) == a.remaining * 0.5 / 100_000  # not the 1 kB/s before


def test_a_look_again_takes_only_from_a_settled_connection() -> None:
    # An idle connection's looks (settled=True) weigh a victim only once its latest window
    # is measured (RECENT after its start, twice) and while it is not silent (a hedge's).
    p = Planner(1_000_000, RangeSet(), pieces=1, min_segment=1000, steal_after=1.0)
    a = p.take(now=0.0)
    assert a is not None
    a.begin(0.0)
    p.advance(a, 1_000)
    p.heard(a, 0.1)  # 10 kB/s: 99 s left, but measured over 0.1 s only
    assert p.take(now=0.25, settled=True) is None
    assert p.take(now=0.25) is not None  # (a connection that just finished its range: as ever)
    q = Planner(1_000_000, RangeSet(), pieces=1, min_segment=1000, steal_after=1.0)
    c = q.take(now=0.0)
    assert c is not None
    c.begin(0.0)
    for t in (0.5, 1.0, 1.5, 2.0, 2.5):
        q.advance(c, 1_000)
        q.heard(c, t)
    assert c.settled(2.6) and q.take(now=2.6, settled=True) is not None
    assert not c.settled(2.5 + 10)  # silent: plan.hedge's business
