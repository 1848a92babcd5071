"""The history checker (tests/history.py) accepts a valid history and rejects broken ones."""

from __future__ import annotations

from typing import Any

import pytest

from tests.history import Attempt, Op, assert_valid, check, check_stream

T0 = 1_800_000_000_000


def ack(bid_id: str, seq: int, amount: int, at: int) -> dict[str, Any]:
    return {"type": "ack", "bid_id": bid_id, "lot": "L", "seq": seq, "amount": amount,
            "at": at, "ends_at": None}


def reject(bid_id: str, code: str, **details: Any) -> dict[str, Any]:
    message = "retry with the same bid_id" if code == "unavailable" else code
    return {"type": "reject", "bid_id": bid_id, "lot": "L", "code": code, "message": message,
            **details}


def op(bid_id: str, amount: int, *attempts: tuple[float, float | None, dict[str, Any] | None]
       ) -> Op:
    return Op("c", bid_id, amount, [Attempt(s, a, ans) for s, a, ans in attempts])


def stored_bid(bid_id: str, seq: int, pseq: int, amount: int, at: int) -> dict[str, Any]:
    return {"kind": "bid", "seq": seq, "pseq": pseq, "at": at, "bid_id": bid_id,
            "amount": amount, "paddle": 1234, "bidder": "x", "ends_at": None}


def valid() -> tuple[list[Op], list[dict[str, Any]]]:
    """Three bids acked in order, one refused as too low, one retried after unavailable."""
    ops = [
        op("a", 100, (T0, T0 + 5, ack("a", 2, 100, T0 + 2))),
        op("b", 110, (T0 + 1, T0 + 9, ack("b", 3, 110, T0 + 6))),
        op("c", 105, (T0 + 10, T0 + 12, reject("c", "too_low", minimum=111))),
        op("d", 120, (T0 + 11, T0 + 13, reject("d", "unavailable")),
           (T0 + 20, T0 + 25, ack("d", 4, 120, T0 + 21))),
    ]
    stored = [
        {"kind": "lot_opened", "seq": 1, "pseq": 1, "at": T0 - 100},
        stored_bid("a", 2, 2, 100, T0 + 2),
        stored_bid("b", 3, 3, 110, T0 + 6),
        stored_bid("d", 4, 4, 120, T0 + 21),
    ]
    return ops, stored


def problems(ops: list[Op], stored: list[dict[str, Any]], **kw: Any) -> list[str]:
    return check(ops, stored, **kw).problems


def test_a_valid_history_passes() -> None:
    ops, stored = valid()
    report = check(ops, stored, increment=1)
    assert report.problems == []
    assert (report.acked, report.refused, report.indeterminate) == (3, 1, 0)
    assert report.answers == {"ack": 3, "too_low": 1, "unavailable": 1}
    assert_valid(report)


def test_an_ack_before_its_request_was_sent_is_rejected() -> None:
    ops, stored = valid()
    ops[1] = op("b", 110, (T0 + 1, T0 - 3, ack("b", 3, 110, T0 + 6)))
    found = problems(ops, stored)
    assert any("before it was sent" in p for p in found), found
    with pytest.raises(AssertionError, match="before it was sent"):
        assert_valid(check(ops, stored))


def test_an_ack_missing_from_the_store_is_rejected() -> None:
    ops, stored = valid()
    found = problems(ops, [e for e in stored if e.get("bid_id") != "b"])
    assert any("acked bid b" in p and "not in the store" in p for p in found), found


def test_an_ack_stored_twice_is_rejected() -> None:
    ops, stored = valid()
    stored.append(stored_bid("d", 5, 5, 130, T0 + 22))
    found = problems(ops, stored)
    assert any("bid d is stored 2 times" in p for p in found), found


def test_an_ack_price_not_above_the_previous_ack_is_rejected() -> None:
    ops, stored = valid()
    ops[1] = op("b", 100, (T0 + 1, T0 + 9, ack("b", 3, 100, T0 + 6)))
    stored[2] = stored_bid("b", 3, 3, 100, T0 + 6)
    found = problems(ops, stored)
    assert any("acked at seq 3 for 100, not above 100" in p for p in found), found
    assert any("stored bid at seq 3 for 100 is not above" in p for p in found), found


def test_a_raise_smaller_than_the_increment_is_rejected() -> None:
    ops, stored = valid()
    assert problems(ops, stored, increment=10) == []
    found = problems(ops, stored, increment=11)
    assert any("less than 11 above" in p for p in found), found


def test_two_acks_with_the_same_seq_are_rejected() -> None:
    ops, stored = valid()
    ops[2] = op("c", 115, (T0 + 10, T0 + 12, ack("c", 3, 115, T0 + 11)))
    found = problems(ops, stored)
    assert any("were both acked with seq 3" in p for p in found), found


def test_an_ack_out_of_real_time_order_is_rejected() -> None:
    # "d" was first sent after "b"'s ack arrived, yet got an earlier seq.
    ops = [
        op("b", 110, (T0, T0 + 5, ack("b", 3, 110, T0 + 2))),
        op("d", 120, (T0 + 6, T0 + 9, ack("d", 2, 120, T0 + 7))),
    ]
    stored = [stored_bid("d", 2, 2, 120, T0 + 7), stored_bid("b", 3, 3, 110, T0 + 2)]
    found = problems(ops, stored)
    assert any("was sent after bid b was acked" in p for p in found), found


def test_server_time_outside_the_request_is_rejected() -> None:
    ops, stored = valid()
    ops[0] = op("a", 100, (T0, T0 + 5, ack("a", 2, 100, T0 + 50)))
    stored[1] = stored_bid("a", 2, 2, 100, T0 + 50)
    found = problems(ops, stored)
    assert any("outside the request's lifetime" in p for p in found), found


def test_a_silent_drop_and_a_stored_refusal_are_rejected() -> None:
    ops, stored = valid()
    ops.append(op("e", 200, (T0 + 30, None, None)))
    stored.append(stored_bid("c", 5, 5, 105, T0 + 11))  # "c" was refused as too low
    found = problems(ops, stored)
    assert any("bid e (attempt 1): no answer" in p for p in found), found
    assert any("bid c was refused (too_low) yet is stored" in p for p in found), found


def test_an_indeterminate_bid_may_be_stored_or_not() -> None:
    ops, stored = valid()
    ops.append(op("e", 130, (T0 + 30, T0 + 35, reject("e", "unavailable"))))
    assert problems(ops, stored) == []
    stored.append(stored_bid("e", 5, 5, 130, T0 + 31))
    report = check(ops, stored)
    assert report.problems == [] and report.stored_indeterminate == 1
    stored.append(stored_bid("zz", 6, 6, 140, T0 + 40))
    assert any("stored bid zz" in p for p in problems(ops, stored))
    assert problems(ops, stored, complete=False) == []


def test_an_inconsistent_too_low_and_an_unhinted_unavailable_are_rejected() -> None:
    ops, stored = valid()
    # "a" (100) was acked before "c" was sent, so the minimum cannot be 100 or less.
    ops[2] = op("c", 99, (T0 + 10, T0 + 12, reject("c", "too_low", minimum=100)))
    ops.append(op("e", 1, (T0 + 30, T0 + 31, {**reject("e", "unavailable"), "message": "x"})))
    found = problems(ops, stored)
    assert any("too_low with minimum 100, yet bid" in p for p in found), found
    assert any("unavailable without a retry hint" in p for p in found), found
    assert not any("retry hint" in p for p in problems(ops, stored, retry_hint=False))


def test_check_stream_finds_gaps_repeats_and_differences() -> None:
    public = [{"seq": n, "kind": "bid", "at": T0 + n, "amount": 100 + n} for n in range(1, 6)]

    def frame(seq: int, **change: Any) -> dict[str, Any]:
        return {"type": "event", "lot": "L", **public[seq - 1], **change}

    assert check_stream([frame(n) for n in range(1, 6)], public, head=5) == []
    snapshot = {"type": "snapshot", "lot": "L", "seq": 3, "state": {}}
    assert check_stream([frame(1), snapshot, frame(4), frame(5)], public, head=5) == []
    assert "a gap" in check_stream([frame(1), frame(3)], public)[0]
    assert "a repeat" in check_stream([frame(1), frame(2), frame(2)], public)[0]
    assert "differs" in check_stream([frame(1, amount=7)], public)[0]
    assert "stopped at seq 2" in check_stream([frame(1), frame(2)], public, head=5)[0]
