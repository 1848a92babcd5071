"""A history checker for bids: is what the clients were told a valid history of one lot?

Tests record every bid a client makes as an :class:`Op`: its ``bid_id`` and amount, and each
*attempt* to place it (the first send, and every retry with the same ``bid_id`` after an
``unavailable``): when the request was sent, when its answer arrived, and the answer frame.
Times are milliseconds since the Unix epoch on the test's clock; on loopback that is the
server's clock too, so the server's ``at`` stamps can be checked against them.

:func:`check` then reads the recorded operations together with the lot's stored record (the
staff view of ``GET /api/lots/{id}/events``: ``kind``, ``seq``, ``pseq``, ``at``, and for bids
``bid_id`` and ``amount``) and lists every way the two fail to form one valid history:

- no answer arrived before its request was sent, and every attempt got an answer (a bid that
  is never answered is a silent drop); refusals carry only ``allowed_codes``, and an
  ``unavailable`` says how to retry;
- an ack names its own ``bid_id`` and amount, and its server time ``at`` lies between the
  first send and the ack's arrival;
- ordered by ``seq``, every ack's price is above every ack before it (by at least
  ``increment`` when given), and no two acks share a ``seq``;
- real-time order: an ack that arrived before another bid was first sent has the smaller
  ``seq``; a ``too_low`` refusal's ``minimum`` is above every ack that arrived before the
  refused bid was sent (and above the refused amount);
- every ack is in the store exactly once, at the ``pseq`` the ack named, with its amount and
  ``at``; the stored bids rise strictly with ``seq``; no ``bid_id`` is stored twice; a bid
  definitely refused is not stored; with ``complete=True`` (every client was recorded), every
  stored bid was asked for by a recorded op.

A bid whose last answer was ``unavailable`` (the test gave up retrying) is *indeterminate*: it
may or may not be stored, and either is valid. :func:`check_stream` does the same for what a
watcher received: a gapless run of events after each snapshot, each equal to the stored public
event of its ``seq``.

Everything here is a pure function of its arguments; ``tests/server/test_history.py`` shows
the checker rejecting broken histories.
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Refusal codes after which a client retries the same ``bid_id``.
RETRYABLE = frozenset({"unavailable", "rate_limited"})
#: Refusals a contended storm legitimately gets.
STORM_CODES = frozenset({"too_low", "already_leading", *RETRYABLE})


@dataclass
class Attempt:
    """One send of a bid frame and its answer (``None``: no answer arrived)."""

    sent: float
    answered: float | None = None
    answer: Mapping[str, Any] | None = None


@dataclass
class Op:
    """One bid: its ``bid_id``, amount and every attempt to place it, in order."""

    client: str
    bid_id: str
    amount: int
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def sent(self) -> float:
        """When the bid was first sent."""
        return self.attempts[0].sent

    @property
    def last(self) -> Mapping[str, Any] | None:
        """The last answer received, if any."""
        for attempt in reversed(self.attempts):
            if attempt.answer is not None:
                return attempt.answer
        return None

    @property
    def ack(self) -> tuple[Attempt, Mapping[str, Any]] | None:
        """The attempt that was acked, and its ack."""
        for attempt in self.attempts:
            if attempt.answer is not None and attempt.answer.get("type") == "ack":
                return attempt, attempt.answer
        return None

    @property
    def outcome(self) -> str:
        """``acked``, ``refused`` (a definite refusal) or ``indeterminate``."""
        if self.ack is not None:
            return "acked"
        last = self.last
        if last is None or last.get("code") in RETRYABLE:
            return "indeterminate"
        return "refused"


@dataclass
class Report:
    """What :func:`check` found: ``problems`` (empty: a valid history) and counts."""

    problems: list[str] = field(default_factory=list)
    ops: int = 0
    acked: int = 0
    refused: int = 0
    indeterminate: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # "ack" or the refusal code
    stored_bids: int = 0
    stored_indeterminate: int = 0  # indeterminate bids that turned out to be stored

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return (f"{self.ops} bids: {self.acked} acked, {self.refused} refused, "
                f"{self.indeterminate} indeterminate ({self.stored_indeterminate} of them "
                f"stored); answers {dict(self.answers)}; {self.stored_bids} bids stored")


def check(ops: Iterable[Op], stored: Sequence[Mapping[str, Any]], *, complete: bool = True,
          increment: int | None = None, allowed_codes: Iterable[str] = STORM_CODES,
          retry_hint: bool = True, slack_ms: float = 2.0) -> Report:
    """Check recorded ``ops`` against the lot's ``stored`` events (staff view). See the
    module docstring for the rules. With ``retry_hint``, every ``unavailable`` must say how
    to retry (a ``retry_after_ms``, or a message that mentions retrying). ``slack_ms``
    absorbs the rounding of times to whole milliseconds."""
    ops = list(ops)
    allowed = frozenset(allowed_codes)
    report = Report(ops=len(ops))
    problems = report.problems

    # --- each op on its own -------------------------------------------------------------
    by_bid_id: dict[str, Op] = {}
    acks: list[tuple[Op, Attempt, Mapping[str, Any]]] = []
    for op in ops:
        if op.bid_id in by_bid_id:
            problems.append(f"bid_id {op.bid_id} recorded for two ops")
        by_bid_id[op.bid_id] = op
        if not op.attempts:
            problems.append(f"bid {op.bid_id} was never sent")
            continue
        for n, attempt in enumerate(op.attempts):
            where = f"bid {op.bid_id} (attempt {n + 1})"
            if attempt.answered is None or attempt.answer is None:
                problems.append(f"{where}: no answer (a silent drop)")
                continue
            if attempt.answered < attempt.sent:
                problems.append(f"{where}: answered at {attempt.answered:.0f}, before it was "
                                f"sent at {attempt.sent:.0f}")
            answer = attempt.answer
            kind = answer.get("type")
            if kind == "ack":
                report.answers["ack"] += 1
            elif kind == "reject":
                code = str(answer.get("code"))
                report.answers[code] += 1
                if code not in allowed:
                    problems.append(f"{where}: refused with unexpected code {code}: "
                                    f"{answer.get('message')}")
                if (retry_hint and code == "unavailable" and "retry_after_ms" not in answer
                        and "retry" not in str(answer.get("message", "")).lower()):
                    problems.append(f"{where}: unavailable without a retry hint: "
                                    f"{answer.get('message')!r}")
                if code not in RETRYABLE and n != len(op.attempts) - 1:
                    problems.append(f"{where}: retried after a definite refusal {code}")
            else:
                problems.append(f"{where}: answered with a {kind!r} frame")
            if kind in ("ack", "reject") and answer.get("bid_id") != op.bid_id:
                problems.append(f"{where}: the answer names bid_id {answer.get('bid_id')}")
            if kind == "ack" and n != len(op.attempts) - 1:
                problems.append(f"{where}: retried after an ack")
        acked = op.ack
        outcome = op.outcome
        if outcome == "acked":
            report.acked += 1
        elif outcome == "refused":
            report.refused += 1
        else:
            report.indeterminate += 1
        if acked is None:
            continue
        attempt, ack = acked
        acks.append((op, attempt, ack))
        if ack.get("amount") != op.amount:
            problems.append(f"bid {op.bid_id}: acked amount {ack.get('amount')}, "
                            f"sent {op.amount}")
        at = ack.get("at")
        if not isinstance(at, int) or not isinstance(ack.get("seq"), int):
            problems.append(f"bid {op.bid_id}: ack without an integer seq and at: {ack}")
            continue
        assert attempt.answered is not None
        if not op.sent - slack_ms <= at <= attempt.answered + slack_ms:
            problems.append(f"bid {op.bid_id}: server time {at} outside the request's "
                            f"lifetime {op.sent:.0f}..{attempt.answered:.0f}")
    acks = [a for a in acks if isinstance(a[2].get("seq"), int)
            and isinstance(a[2].get("at"), int)]

    # --- acks in seq order ----------------------------------------------------------------
    acks.sort(key=lambda a: (a[2]["seq"], a[1].answered or 0.0))
    previous: tuple[Op, Mapping[str, Any]] | None = None
    for op, _, ack in acks:
        if previous is not None:
            prev_op, prev_ack = previous
            if ack["seq"] == prev_ack["seq"]:
                problems.append(f"bids {prev_op.bid_id} and {op.bid_id} were both acked "
                                f"with seq {ack['seq']}")
            elif op.amount <= prev_op.amount:
                problems.append(f"bid {op.bid_id} acked at seq {ack['seq']} for {op.amount}, "
                                f"not above {prev_op.amount} acked at seq {prev_ack['seq']}")
            elif increment is not None and op.amount - prev_op.amount < increment:
                problems.append(f"bid {op.bid_id} acked at seq {ack['seq']} for {op.amount}, "
                                f"less than {increment} above {prev_op.amount} acked at seq "
                                f"{prev_ack['seq']}")
        previous = op, ack

    # --- real-time order --------------------------------------------------------------------
    # Acks by arrival time, with the highest seq and amount acked so far at each point.
    arrived = sorted(((a[1].answered or 0.0), a[2]["seq"], a[0].amount, a[0].bid_id)
                     for a in acks)
    times = [t for t, _, _, _ in arrived]
    top_seq: list[tuple[int, str]] = []
    top_amount: list[tuple[int, str]] = []
    for _, seq, amount, bid_id in arrived:
        top_seq.append(max(top_seq[-1], (seq, bid_id)) if top_seq else (seq, bid_id))
        top_amount.append(max(top_amount[-1], (amount, bid_id)) if top_amount
                          else (amount, bid_id))

    def before(t: float) -> int:
        """How many acks had arrived strictly before ``t``."""
        return bisect.bisect_left(times, t)

    for op, _, ack in acks:
        n = before(op.sent)
        if n and top_seq[n - 1][0] >= ack["seq"]:
            seq, other = top_seq[n - 1]
            problems.append(f"bid {op.bid_id} was sent after bid {other} was acked with seq "
                            f"{seq}, yet got the smaller or equal seq {ack['seq']}")
    for op in ops:
        last = op.last
        if op.outcome != "refused" or last is None or last.get("code") != "too_low":
            continue
        minimum = last.get("minimum")
        if not isinstance(minimum, int):
            problems.append(f"bid {op.bid_id}: too_low without a minimum")
            continue
        if op.amount >= minimum:
            problems.append(f"bid {op.bid_id}: {op.amount} refused as too_low, yet the "
                            f"minimum was {minimum}")
        n = before(op.sent)
        if n and top_amount[n - 1][0] >= minimum:
            amount, other = top_amount[n - 1]
            problems.append(f"bid {op.bid_id}: too_low with minimum {minimum}, yet bid "
                            f"{other} for {amount} was acked before it was sent")

    # --- the store ----------------------------------------------------------------------------
    bids = sorted((e for e in stored if e.get("kind") == "bid"), key=lambda e: e["seq"])
    report.stored_bids = len(bids)
    stored_by_id: dict[str, list[Mapping[str, Any]]] = {}
    for event in bids:
        stored_by_id.setdefault(str(event.get("bid_id")), []).append(event)
    for bid_id, events in stored_by_id.items():
        if len(events) > 1:
            problems.append(f"bid {bid_id} is stored {len(events)} times, at seq "
                            f"{[e['seq'] for e in events]}")
    pseqs = Counter(e.get("pseq") for e in bids)
    for pseq, n in pseqs.items():
        if n > 1:
            problems.append(f"{n} stored bids share the public seq {pseq}")
    for earlier, later in itertools.pairwise(bids):
        if later["amount"] <= earlier["amount"]:
            problems.append(f"stored bid at seq {later['seq']} for {later['amount']} is not "
                            f"above the one at seq {earlier['seq']} for {earlier['amount']}")
        elif increment is not None and later["amount"] - earlier["amount"] < increment:
            problems.append(f"stored bid at seq {later['seq']} raised by less than {increment}")
    for op, _, ack in acks:
        found = stored_by_id.get(op.bid_id, [])
        if not found:
            problems.append(f"acked bid {op.bid_id} (seq {ack['seq']}, {op.amount}) is not "
                            "in the store")
            continue
        event = found[0]
        if event.get("pseq") != ack["seq"]:
            problems.append(f"acked bid {op.bid_id}: ack seq {ack['seq']}, stored at public "
                            f"seq {event.get('pseq')}")
        if event.get("amount") != ack.get("amount"):
            problems.append(f"acked bid {op.bid_id}: ack amount {ack.get('amount')}, stored "
                            f"{event.get('amount')}")
        if event.get("at") != ack.get("at"):
            problems.append(f"acked bid {op.bid_id}: ack at {ack.get('at')}, stored "
                            f"{event.get('at')}")
    for bid_id, events in stored_by_id.items():
        op = by_bid_id.get(bid_id)
        if op is None:
            if complete:
                problems.append(f"stored bid {bid_id} (seq {events[0]['seq']}) was never "
                                "sent by a recorded client")
            continue
        if op.outcome == "refused":
            assert op.last is not None
            problems.append(f"bid {bid_id} was refused ({op.last.get('code')}) yet is stored "
                            f"at seq {events[0]['seq']}")
        elif op.outcome == "indeterminate":
            report.stored_indeterminate += 1
        if events[0].get("amount") != op.amount:
            problems.append(f"stored bid {bid_id} for {events[0].get('amount')}, sent for "
                            f"{op.amount}")
    return report


def check_stream(messages: Sequence[Mapping[str, Any]], public: Sequence[Mapping[str, Any]],
                 *, lot: str | None = None, head: int | None = None) -> list[str]:
    """Problems with what one watcher of a lot received (``snapshot`` and ``event`` frames,
    in arrival order) against the lot's stored ``public`` events (the public view of
    ``GET /api/lots/{id}/events``, ``seq`` = public seq).

    After each snapshot (or from the first event) the events must follow one another with no
    gap and no duplicate, each equal to the stored public event with its ``seq``; with
    ``head``, the watcher must have reached that public seq."""
    problems: list[str] = []
    by_seq = {e["seq"]: e for e in public}
    expected: int | None = None
    last: int | None = None
    for message in messages:
        if lot is not None and message.get("lot") != lot:
            continue
        kind, seq = message.get("type"), message.get("seq")
        if kind == "snapshot":
            if not isinstance(seq, int) or (last is not None and seq < last):
                problems.append(f"snapshot at seq {seq} after seq {last}")
            expected = (seq if isinstance(seq, int) else 0) + 1
            last = seq if isinstance(seq, int) else last
            continue
        if kind != "event":
            continue
        if expected is not None and seq != expected:
            what = "a gap" if isinstance(seq, int) and seq > expected else "a repeat"
            problems.append(f"event seq {seq} where {expected} was due ({what})")
        stored = by_seq.get(seq)
        body = {k: v for k, v in message.items() if k not in ("type", "lot")}
        if stored is None:
            problems.append(f"event seq {seq} ({message.get('kind')}) is not in the store")
        elif body != dict(stored):
            problems.append(f"event seq {seq} differs from the store: {body} != {dict(stored)}")
        expected = (seq if isinstance(seq, int) else 0) + 1
        last = seq
    if head is not None and (last or 0) < head:
        problems.append(f"the watcher stopped at seq {last}, the store is at {head}")
    return problems


def assert_valid(report: Report, what: str = "history") -> None:
    """Fail with the first problems found (and the counts), if any."""
    if report.problems:
        shown = "\n  ".join(report.problems[:25])
        more = len(report.problems) - 25
        raise AssertionError(f"invalid {what} ({len(report.problems)} problems; "
                             f"{report.summary()}):\n  {shown}"
                             + (f"\n  ... and {more} more" if more > 0 else ""))
