"""Everything that decides which state a tender moves to lives in this file.

A tender's life::

    draft --publish--> accepting --deadline--> deadline --start--> decrypting | failed
    decrypting --window_end | all_settled--> announced --open_objections--> objections
    objections --close--> closed
    accepting | deadline | decrypting | announced | objections --fail--> failed

``deadline`` moves by time (the submission deadline passing); ``start`` fails the
tender when fewer than ``min_bids`` bids were received (reason ``too_few_bids``);
``window_end`` fires when the decryption window ends and every bid is settled,
``all_settled`` when the last bid settles. A pause is a flag of ``decrypting``,
not a state.

``TRANSITIONS[state][trigger]`` lists the states a trigger may lead to; a
missing key means the move is illegal and :func:`check` raises.
"""

from __future__ import annotations

import enum
from typing import Final

from .errors import InvariantBroken


class TenderState(enum.StrEnum):
    DRAFT = "draft"
    ACCEPTING = "accepting"
    DEADLINE = "deadline"  # submission closed, waiting for the host to start
    DECRYPTING = "decrypting"
    ANNOUNCED = "announced"
    OBJECTIONS = "objections"
    CLOSED = "closed"
    FAILED = "failed"


class Outcome(enum.StrEnum):
    """What became of one bid at the opening."""

    WAITING = "waiting"  # received, not settled yet
    DECRYPTED = "decrypted"
    FAILED = "failed"  # the key was released but the bid could not be read
    ABSENT = "absent"  # never checked in, not decrypted in time
    WITHDRAWN = "withdrawn"  # withdrawn before the deadline, or checked in but not decrypted


#: Outcomes of a settled bid: it will not change again.
SETTLED: Final = frozenset({Outcome.DECRYPTED, Outcome.FAILED, Outcome.ABSENT,
                            Outcome.WITHDRAWN})


class Trigger(enum.StrEnum):
    PUBLISH = "publish"
    DEADLINE = "deadline"
    START = "start"
    WINDOW_END = "window_end"
    ALL_SETTLED = "all_settled"
    OPEN_OBJECTIONS = "open_objections"
    CLOSE = "close"
    FAIL = "fail"


_S = TenderState
_T = Trigger
_FAIL: Final = frozenset({_S.FAILED})

TRANSITIONS: Final[dict[TenderState, dict[Trigger, frozenset[TenderState]]]] = {
    _S.DRAFT: {_T.PUBLISH: frozenset({_S.ACCEPTING})},
    _S.ACCEPTING: {_T.DEADLINE: frozenset({_S.DEADLINE}), _T.FAIL: _FAIL},
    _S.DEADLINE: {_T.START: frozenset({_S.DECRYPTING, _S.FAILED}), _T.FAIL: _FAIL},
    _S.DECRYPTING: {
        _T.WINDOW_END: frozenset({_S.ANNOUNCED}),
        _T.ALL_SETTLED: frozenset({_S.ANNOUNCED}),
        _T.FAIL: _FAIL,
    },
    _S.ANNOUNCED: {_T.OPEN_OBJECTIONS: frozenset({_S.OBJECTIONS}), _T.FAIL: _FAIL},
    _S.OBJECTIONS: {_T.CLOSE: frozenset({_S.CLOSED}), _T.FAIL: _FAIL},
    _S.CLOSED: {},
    _S.FAILED: {},
}

#: States in which bidders may still register (and only before the deadline).
REGISTRATION: Final = frozenset({_S.DRAFT, _S.ACCEPTING})
#: States in which check-in may be open (the times in the terms decide the rest).
CHECK_IN: Final = frozenset({_S.ACCEPTING, _S.DEADLINE, _S.DECRYPTING})
#: States in which the opening record may be confirmed.
CONFIRMING: Final = frozenset({_S.ANNOUNCED, _S.OBJECTIONS, _S.CLOSED})
#: States after the start: the list of received bids is public.
STARTED: Final = frozenset({_S.DECRYPTING, _S.ANNOUNCED, _S.OBJECTIONS, _S.CLOSED})
#: Outcomes: a tender in one of these states never changes again (but for confirmations).
FINAL: Final = frozenset({_S.CLOSED, _S.FAILED})


def can(current: TenderState, trigger: Trigger) -> bool:
    """Whether ``trigger`` may fire in state ``current`` at all."""
    return trigger in TRANSITIONS[current]


def check(current: TenderState, trigger: Trigger, target: TenderState) -> None:
    """Raise :class:`InvariantBroken` unless ``trigger`` may move ``current`` to ``target``."""
    allowed = TRANSITIONS[current].get(trigger)
    if allowed is None or target not in allowed:
        raise InvariantBroken(f"illegal transition {current} --{trigger}--> {target}")
