"""Everything that decides which phase a lot moves to lives in this file.

A lot's life::

    announcement --open--> listing --stop--> listing_stopped
         listing | listing_stopped --contest--> timed | preparation | auction
         listing | listing_stopped --no_contest--> sold | unsold
         preparation --start--> auction
         timed | auction --countdown_end--> sold | unsold
         listing | timed | auction --cap--> capped
         timed | auction --restart--> preparation | timed | auction   (resume after a freeze)

``TRANSITIONS[phase][trigger]`` lists the phases a trigger may lead to; a
missing key means the move is illegal and :func:`check` raises.
"""

from __future__ import annotations

import enum
from typing import Final

from .errors import InvariantBroken


class Phase(enum.StrEnum):
    ANNOUNCEMENT = "announcement"
    LISTING = "listing"
    LISTING_STOPPED = "listing_stopped"
    PREPARATION = "preparation"
    TIMED = "timed"
    AUCTION = "auction"
    SOLD = "sold"
    UNSOLD = "unsold"
    CAPPED = "capped"


class Trigger(enum.StrEnum):
    OPEN = "open"
    STOP = "stop"
    CONTEST = "contest"
    NO_CONTEST = "no_contest"
    START = "start"
    COUNTDOWN_END = "countdown_end"
    CAP = "cap"
    RESTART = "restart"


_P = Phase
_T = Trigger
_CLOSE: Final = frozenset({_P.SOLD, _P.UNSOLD})

TRANSITIONS: Final[dict[Phase, dict[Trigger, frozenset[Phase]]]] = {
    _P.ANNOUNCEMENT: {_T.OPEN: frozenset({_P.LISTING})},
    _P.LISTING: {
        _T.STOP: frozenset({_P.LISTING_STOPPED}),
        _T.CONTEST: frozenset({_P.TIMED, _P.PREPARATION, _P.AUCTION}),
        _T.NO_CONTEST: _CLOSE,
        _T.CAP: frozenset({_P.CAPPED}),
    },
    _P.LISTING_STOPPED: {
        _T.CONTEST: frozenset({_P.TIMED, _P.PREPARATION, _P.AUCTION}),
        _T.NO_CONTEST: _CLOSE,
    },
    _P.PREPARATION: {
        _T.START: frozenset({_P.AUCTION}),
        _T.RESTART: frozenset({_P.PREPARATION}),
    },
    _P.TIMED: {
        _T.COUNTDOWN_END: _CLOSE,
        _T.CAP: frozenset({_P.CAPPED}),
        _T.RESTART: frozenset({_P.TIMED, _P.PREPARATION}),
    },
    _P.AUCTION: {
        _T.COUNTDOWN_END: _CLOSE,
        _T.CAP: frozenset({_P.CAPPED}),
        _T.RESTART: frozenset({_P.AUCTION, _P.PREPARATION}),
    },
    _P.SOLD: {},
    _P.UNSOLD: {},
    _P.CAPPED: {},
}

#: Phases in which price bids are taken.
BIDDING: Final = frozenset({_P.LISTING, _P.TIMED, _P.AUCTION})
#: Phases run by a countdown that every bid restarts.
COUNTDOWN: Final = frozenset({_P.TIMED, _P.AUCTION})
#: Phases a lot can be frozen in (a system failure during a running sale).
RUNNING: Final = frozenset({_P.LISTING, _P.LISTING_STOPPED, _P.PREPARATION, _P.TIMED, _P.AUCTION})
#: Phases in which bidders may still be qualified (registration is open).
REGISTRATION: Final = frozenset({_P.ANNOUNCEMENT, _P.LISTING, _P.LISTING_STOPPED})
#: Outcomes: a lot in one of these phases never changes again.
FINAL: Final = frozenset({_P.SOLD, _P.UNSOLD, _P.CAPPED})


def check(current: Phase, trigger: Trigger, target: Phase) -> None:
    """Raise :class:`InvariantBroken` unless ``trigger`` may move ``current`` to ``target``."""
    allowed = TRANSITIONS[current].get(trigger)
    if allowed is None or target not in allowed:
        raise InvariantBroken(f"illegal transition {current} --{trigger}--> {target}")
