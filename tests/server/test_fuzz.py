"""Fuzzing the parsers: every input is either accepted or refused with a documented code."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auction import MAX_AMOUNT
from server.auth import Tokens, new_secret
from server.errors import ServerError
from server.protocol import MAX_FRAME, Bid, Hello, Ping, Subscribe, Unsubscribe, decode
from tests.conftest import Running, lot_fields

DECODE_CODES = {"bad_json", "bad_message", "unknown_type", "invalid_amount", "frame_too_large"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)

messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["hello", "subscribe", "unsubscribe", "bid", "ping", "Bid", "",
                              "teleport"])},
    optional={"lot": st.one_of(st.sampled_from(["L1", "lot-1", "a" * 64, "a" * 65, "../x",
                                                "标的", ""]), json_values),
              "amount": st.one_of(st.integers(-10, 10), st.integers(MAX_AMOUNT - 2,
                                                                    MAX_AMOUNT + 2),
                                  st.integers(), st.floats(), json_values),
              "bid_id": st.one_of(st.text(max_size=70), json_values),
              "since": st.one_of(st.integers(-3, 2**60), json_values),
              "token": st.one_of(st.text(max_size=50), json_values),
              "t": json_values,
              "extra": json_values})


def check_decoded(frame: str | bytes) -> None:
    try:
        message = decode(frame)
    except ServerError as exc:
        assert exc.code in DECODE_CODES, exc.code
        assert exc.message
        return
    if isinstance(message, Bid):
        assert type(message.amount) is int and 0 < message.amount <= MAX_AMOUNT
        assert 1 <= len(message.bid_id) <= 64
    if isinstance(message, Bid | Subscribe | Unsubscribe):
        assert 1 <= len(message.lot) <= 64 and message.lot[0].isalnum()
        assert all(c.isascii() and (c.isalnum() or c in "_-") for c in message.lot)
    if isinstance(message, Subscribe) and message.since is not None:
        assert message.since >= 0
    assert isinstance(message, Hello | Subscribe | Unsubscribe | Bid | Ping)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_arbitrary_text_never_escapes_the_error_codes(frame: str | bytes) -> None:
    check_decoded(frame)


@settings(max_examples=3000, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_message_shaped_json_is_accepted_only_when_valid(message: dict[str, Any]) -> None:
    check_decoded(json.dumps(message))


@given(st.integers(MAX_FRAME + 1, MAX_FRAME * 4))
def test_oversized_frames_are_refused_before_parsing(size: int) -> None:
    try:
        decode('{"type":"ping","t":"' + "x" * size + '"}')
    except ServerError as exc:
        assert exc.code == "frame_too_large"
    else:
        raise AssertionError("an oversized frame was parsed")


TOKENS = Tokens(new_secret())


@settings(max_examples=1000)
@given(st.one_of(st.text(max_size=300), st.builds(lambda a, b, c: f"bh1.{a}.{b}{c}",
                                                  st.text(max_size=60), st.text(max_size=60),
                                                  st.text(max_size=5)),
                 st.none(), st.integers()))
def test_token_check_only_accepts_what_it_signed(token: object) -> None:
    try:
        TOKENS.verify(token, 0)
    except ServerError as exc:
        assert exc.code == "bad_token"
    else:
        raise AssertionError(f"accepted an unsigned token {token!r}")


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_signed_tokens_round_trip_and_a_flipped_character_breaks_them(subject: str,
                                                                      lot: str) -> None:
    token = TOKENS.issue("bidder", subject, lot, 10**15)
    cred = TOKENS.verify(token, 0)
    assert (cred.subject, cred.lot) == (subject, lot)
    for i in range(4, len(token), max(1, len(token) // 7)):
        flipped = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]
        try:
            other = TOKENS.verify(flipped, 0)
        except ServerError as exc:
            assert exc.code == "bad_token"
        else:  # base64 padding bits may absorb a flip: then it must decode to the same claims
            assert (other.subject, other.lot) == (subject, lot)


def random_frames(seed: int, count: int) -> list[str]:
    """Garbage, near-misses and wrong types; never a valid bid or hello."""
    rng = random.Random(seed)
    junk = ["{", "}", "[", "null", '"', "\\u0000", "\\ud800", "1e999", "-0", "标的", "\x00",
            '{"type":', '"bid"', '"ping"', "true", ","]
    out = []
    for _ in range(count):
        shape = rng.randrange(4)
        if shape == 0:
            out.append("".join(rng.choice(junk) for _ in range(rng.randrange(1, 12))))
        elif shape == 1:
            out.append(json.dumps({"type": rng.choice(["subscribe", "unsubscribe", "ping",
                                                       "teleport", 7, None]),
                                   "lot": rng.choice([None, 5, "../x", "", "x" * 70, []]),
                                   "since": rng.choice([-1, "3", 2**80, 1.5]),
                                   "t": rng.choice(["now", [], {}, 1e308])}))
        elif shape == 2:
            out.append(json.dumps({"type": "bid", "lot": "L1",
                                   "amount": rng.choice([0, -1, 1.5, "100", 10**30, None]),
                                   "bid_id": "x"}))
        else:
            out.append(json.dumps(rng.choice([[], 1, "s", None, {"no": "type"}])))
    return out


async def test_a_live_connection_survives_a_fuzzing_burst_unchanged(server: Running,
                                                                    staff) -> None:
    lot = await staff.create_lot(**lot_fields())
    bidder = await staff.qualify(lot["lot_id"], "公司A", "R")
    before = await staff.events(lot["lot_id"])
    frames = random_frames(seed=2026, count=200)
    async with server.live(bidder["token"], reconnect=False) as client:
        for frame in frames:
            await client.send_raw(frame)
        refused = 0
        for frame in frames:
            try:
                decode(frame)
            except ServerError:
                refused += 1
        assert refused > 150
        codes = [(await client.next())["code"] for _ in range(refused)]
        assert set(codes) <= DECODE_CODES, set(codes)
        await client.send_raw(json.dumps({"type": "subscribe", "lot": lot["lot_id"]}))
        assert (await client.next())["type"] == "snapshot"  # still served after the burst
    after = await staff.events(lot["lot_id"])
    assert after == before
