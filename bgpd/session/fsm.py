"""The BGP-4 finite state machine of RFC 4271 section 8, as a table.

States and events are numbered as RFC 4271 sections 8.1 and 8.2.2 number
them.  For every (State, Event) pair, ``TABLE`` holds the actions section
8.2.2 says to take and the next state; ``step`` looks them up.  Nothing here
performs an action, keeps time or touches a socket: the per-peer Factory
keeps the session attributes, turns them into a ``Flags`` record, calls
``step`` and performs the returned ``Action`` values in order.

Where section 8.2.2 makes a transition depend on a session attribute
(DelayOpen, PassiveTcpEstablishment, SendNOTIFICATIONwithoutOPEN,
DampPeerOscillations, CollisionDetectEstablishedState, section 8.1.1) or on
running state (DelayOpenTimer running, a zero negotiated HoldTime, the result
of collision detection, section 6.8), the table entry is a tuple of guarded
alternatives; the first whose guards all hold is taken, and the last one is
always unguarded, so ``step`` is total.

Finite State Machine Error NOTIFICATIONs carry the subcodes of RFC 6608
(``fsm_error_subcode``).

Where this table departs from the letter of section 8.2.2 it says so in the
``rfc`` text of the transition ("bgpd:"), and in a comment:

- Idle, start events and Events 2/8: a pending IdleHoldTimer is stopped, or
  it would fire Event 13 in a later state, where that event is an FSM error.
- Idle, Event 14: rejects the connection ("refuses all incoming BGP
  connections"); the RFC's list of ignored Idle events leaves 14 out.  But
  while an automatic restart is pending (the IdleHoldTimer of a peer that
  is not administratively stopped, nor held down by a prefix limit) the
  connection is accepted and the peer goes to Active: the back-off delays
  only our own connect attempts, so a peer that only dials in (its port 179
  filtered, or a speaker that never listens) is never locked out by it.
- Connect, Event 18 (DelayOpenTimer not running): the failed connect goes to
  Active, restarting the ConnectRetryTimer, instead of Idle: bgpd keeps
  listening between connect attempts, as FRR and BIRD do, and the retry
  comes when the ConnectRetryTimer expires (Event 9 in Active).
- Connect, Event 12: completes BGP initialization, as the identical Active
  transition does.
- OpenSent, Event 18: stops the HoldTimer, or it would expire in Active.
- Established, Event 10: deletes the peer's routes like every other exit.
- Established, Event 21: a header error sends its own NOTIFICATION (Message
  Header Error, section 6.1), not an FSM error.
- Established, Events 18/24/25: peer oscillation damping when enabled, as on
  every other exit that increments the ConnectRetryCounter.
- OpenConfirm and Established, Event 19 without a collision dump: an OPEN on
  the session's own connection is an unexpected message, answered with a
  Finite State Machine Error (RFC 6608 subcodes 2 and 3); an OPEN on the
  second connection is the Factory's collision procedure (section 6.8).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum, auto
from types import MappingProxyType

__all__ = [
    "Action",
    "Alternative",
    "Event",
    "Flags",
    "Guard",
    "NO_FLAGS",
    "Rule",
    "State",
    "TABLE",
    "Transition",
    "describe_table",
    "fsm_error_subcode",
    "step",
]


class State(IntEnum):
    """The six session states of RFC 4271 section 8.2.2."""

    IDLE = 1
    CONNECT = 2
    ACTIVE = 3
    OPEN_SENT = 4
    OPEN_CONFIRM = 5
    ESTABLISHED = 6

    @property
    def rfc_name(self) -> str:
        """The state's name as RFC 4271 spells it, e.g. ``OpenSent``."""
        return _STATE_NAMES[self]


_STATE_NAMES = {
    State.IDLE: "Idle",
    State.CONNECT: "Connect",
    State.ACTIVE: "Active",
    State.OPEN_SENT: "OpenSent",
    State.OPEN_CONFIRM: "OpenConfirm",
    State.ESTABLISHED: "Established",
}


class Event(IntEnum):
    """The 28 FSM events, numbered as RFC 4271 section 8.1 numbers them."""

    # 8.1.2 administrative events; only 1 and 2 are mandatory.
    MANUAL_START = 1
    MANUAL_STOP = 2
    AUTOMATIC_START = 3
    MANUAL_START_WITH_PASSIVE_TCP_ESTABLISHMENT = 4
    AUTOMATIC_START_WITH_PASSIVE_TCP_ESTABLISHMENT = 5
    AUTOMATIC_START_WITH_DAMP_PEER_OSCILLATIONS = 6
    AUTOMATIC_START_WITH_DAMP_PEER_OSCILLATIONS_AND_PASSIVE_TCP_ESTABLISHMENT = 7
    AUTOMATIC_STOP = 8
    # 8.1.3 timer events.
    CONNECT_RETRY_TIMER_EXPIRES = 9
    HOLD_TIMER_EXPIRES = 10
    KEEPALIVE_TIMER_EXPIRES = 11
    DELAY_OPEN_TIMER_EXPIRES = 12
    IDLE_HOLD_TIMER_EXPIRES = 13
    # 8.1.4 TCP connection events.
    TCP_CONNECTION_VALID = 14
    TCP_CR_INVALID = 15
    TCP_CR_ACKED = 16
    TCP_CONNECTION_CONFIRMED = 17
    TCP_CONNECTION_FAILS = 18
    # 8.1.5 message events.
    BGP_OPEN = 19
    BGP_OPEN_WITH_DELAY_OPEN_TIMER_RUNNING = 20
    BGP_HEADER_ERR = 21
    BGP_OPEN_MSG_ERR = 22
    OPEN_COLLISION_DUMP = 23
    NOTIF_MSG_VER_ERR = 24
    NOTIF_MSG = 25
    KEEPALIVE_MSG = 26
    UPDATE_MSG = 27
    UPDATE_MSG_ERR = 28

    @property
    def rfc_name(self) -> str:
        """The event's name as RFC 4271 spells it, e.g. ``Tcp_CR_Acked``."""
        return _EVENT_NAMES[self]


_EVENT_NAMES = {
    Event.MANUAL_START: "ManualStart",
    Event.MANUAL_STOP: "ManualStop",
    Event.AUTOMATIC_START: "AutomaticStart",
    Event.MANUAL_START_WITH_PASSIVE_TCP_ESTABLISHMENT: "ManualStart_with_PassiveTcpEstablishment",
    Event.AUTOMATIC_START_WITH_PASSIVE_TCP_ESTABLISHMENT: (
        "AutomaticStart_with_PassiveTcpEstablishment"
    ),
    Event.AUTOMATIC_START_WITH_DAMP_PEER_OSCILLATIONS: "AutomaticStart_with_DampPeerOscillations",
    Event.AUTOMATIC_START_WITH_DAMP_PEER_OSCILLATIONS_AND_PASSIVE_TCP_ESTABLISHMENT: (
        "AutomaticStart_with_DampPeerOscillations_and_PassiveTcpEstablishment"
    ),
    Event.AUTOMATIC_STOP: "AutomaticStop",
    Event.CONNECT_RETRY_TIMER_EXPIRES: "ConnectRetryTimer_Expires",
    Event.HOLD_TIMER_EXPIRES: "HoldTimer_Expires",
    Event.KEEPALIVE_TIMER_EXPIRES: "KeepaliveTimer_Expires",
    Event.DELAY_OPEN_TIMER_EXPIRES: "DelayOpenTimer_Expires",
    Event.IDLE_HOLD_TIMER_EXPIRES: "IdleHoldTimer_Expires",
    Event.TCP_CONNECTION_VALID: "TcpConnection_Valid",
    Event.TCP_CR_INVALID: "Tcp_CR_Invalid",
    Event.TCP_CR_ACKED: "Tcp_CR_Acked",
    Event.TCP_CONNECTION_CONFIRMED: "TcpConnectionConfirmed",
    Event.TCP_CONNECTION_FAILS: "TcpConnectionFails",
    Event.BGP_OPEN: "BGPOpen",
    Event.BGP_OPEN_WITH_DELAY_OPEN_TIMER_RUNNING: "BGPOpen with DelayOpenTimer running",
    Event.BGP_HEADER_ERR: "BGPHeaderErr",
    Event.BGP_OPEN_MSG_ERR: "BGPOpenMsgErr",
    Event.OPEN_COLLISION_DUMP: "OpenCollisionDump",
    Event.NOTIF_MSG_VER_ERR: "NotifMsgVerErr",
    Event.NOTIF_MSG: "NotifMsg",
    Event.KEEPALIVE_MSG: "KeepAliveMsg",
    Event.UPDATE_MSG: "UpdateMsg",
    Event.UPDATE_MSG_ERR: "UpdateMsgErr",
}


class Action(Enum):
    """One thing section 8.2.2 tells the local system to do.

    The Factory performs a transition's actions in the order given.  Every
    STOP_* action must be harmless when the timer is not running: the RFC
    often says "stops the timer (if running)", and the table does not track
    which timers run.
    """

    @staticmethod
    def _generate_next_value_(name: str, start: int, count: int, last_values: list) -> str:
        # Readable values for logs: Action.SEND_OPEN.value == "send_open".
        return name.lower()

    # Per-peer resources (8.2.1.5: what they are is the implementation's business).
    INITIALIZE_RESOURCES = auto()
    COMPLETE_BGP_INITIALIZATION = auto()
    #: Also stops the HoldTimer, KeepaliveTimer and DelayOpenTimer of the connection.
    RELEASE_RESOURCES = auto()

    # ConnectRetryTimer and ConnectRetryCounter.
    START_CONNECT_RETRY_TIMER = auto()
    RESTART_CONNECT_RETRY_TIMER = auto()
    #: "stops the ConnectRetryTimer" and "sets the ConnectRetryTimer to zero".
    STOP_CONNECT_RETRY_TIMER = auto()
    ZERO_CONNECT_RETRY_COUNTER = auto()
    INCREMENT_CONNECT_RETRY_COUNTER = auto()

    # TCP.
    INITIATE_TCP_CONNECTION = auto()
    LISTEN_FOR_CONNECTION = auto()
    #: Event 14 in Connect/Active (and, bgpd, in Idle while an automatic
    #: restart is pending): accept the valid incoming connection request.
    PROCESS_TCP_CONNECTION = auto()
    #: Event 15 in Connect/Active, Event 14 in Idle: refuse the connection request.
    REJECT_TCP_CONNECTION = auto()
    DROP_TCP_CONNECTION = auto()
    #: A second connection for this peer: keep it for collision detection (6.8).
    TRACK_SECOND_CONNECTION = auto()

    # Messages sent.
    SEND_OPEN = auto()
    SEND_KEEPALIVE = auto()
    SEND_NOTIFICATION_CEASE = auto()
    SEND_NOTIFICATION_HOLD_TIMER_EXPIRED = auto()
    #: Code 5; the subcode is ``fsm_error_subcode(state)`` of the state left.
    SEND_NOTIFICATION_FSM_ERROR = auto()
    #: The code and subcode the event carries (a bad header, OPEN or UPDATE).
    SEND_NOTIFICATION_FROM_ERROR = auto()

    # HoldTimer and KeepaliveTimer.
    #: The "large value" of 8.2.2; 4 minutes is suggested.
    START_HOLD_TIMER_LARGE = auto()
    START_HOLD_TIMER_NEGOTIATED = auto()
    RESTART_HOLD_TIMER = auto()
    STOP_HOLD_TIMER = auto()
    START_KEEPALIVE_TIMER = auto()
    RESTART_KEEPALIVE_TIMER = auto()
    STOP_KEEPALIVE_TIMER = auto()

    # DelayOpenTimer (8.1.1 group 4).
    START_DELAY_OPEN_TIMER = auto()
    STOP_DELAY_OPEN_TIMER = auto()

    # Peer oscillation damping (8.1.1 group 1): how is up to the Factory.
    #: Hold the peer in Idle for IdleHoldTime; its expiry is Event 13.
    START_IDLE_HOLD_TIMER = auto()
    STOP_IDLE_HOLD_TIMER = auto()
    #: Record one more oscillation, e.g. lengthen IdleHoldTime.
    PEER_OSCILLATION_DAMPING = auto()

    # Messages received.
    #: Take the received OPEN: negotiated hold time, capabilities, internal or external.
    PROCESS_OPEN = auto()
    PROCESS_UPDATE = auto()

    # The session as the rest of bgpd sees it.
    #: Entered Established: report the peer up, start sending routes.
    SESSION_ESTABLISHED = auto()
    #: Leaving Established: "deletes all routes associated with this connection".
    SESSION_DOWN = auto()


@dataclass(frozen=True)
class Flags:
    """Session attributes and running state that some transitions depend on.

    The Factory fills this in before each ``step``.  Names follow RFC 4271
    section 8.1.1 where the RFC has one.
    """

    #: DelayOpen (8.1.1 group 4): wait DelayOpenTime for the peer's OPEN first.
    delay_open: bool = False
    #: The DelayOpenTimer is running.
    delay_open_timer_running: bool = False
    #: SendNOTIFICATIONwithoutOPEN (8.1.1 group 4).
    send_notification_without_open: bool = False
    #: DampPeerOscillations (8.1.1 group 1).
    damp_peer_oscillations: bool = False
    #: The IdleHoldTimer is running (a damped restart is pending).
    idle_hold_timer_running: bool = False
    #: PassiveTcpEstablishment (8.1.1 group 3): chooses the state a damped
    #: restart enters when the IdleHoldTimer expires (Event 13).
    passive: bool = False
    #: Collision detection (6.8) chose this connection to be closed.  Read
    #: for BGPOpen (Event 19) only; a Factory may instead fire Event 23.
    collision_dump: bool = False
    #: CollisionDetectEstablishedState (8.1.1 group 4).
    collision_detect_established: bool = False
    #: The negotiated HoldTime is zero: no HoldTimer, no KeepaliveTimer (4.2).
    hold_time_zero: bool = False
    #: In Idle, an automatic restart is pending that a connection from the
    #: peer may cut short: the IdleHoldTimer runs after an error, and the peer
    #: is neither administratively stopped nor held down by a prefix limit.
    accept_while_idle: bool = False


NO_FLAGS = Flags()

_FLAG_NAMES = frozenset(field.name for field in dataclasses.fields(Flags))


@dataclass(frozen=True)
class Guard:
    """A condition of an alternative: ``getattr(flags, flag) is value``."""

    flag: str
    value: bool = True

    def holds(self, flags: Flags) -> bool:
        """Whether ``flags`` satisfies this guard."""
        return bool(getattr(flags, self.flag)) is self.value

    def __str__(self) -> str:
        return self.flag if self.value else f"not {self.flag}"


@dataclass(frozen=True)
class Transition:
    """What to do for one (state, event, flags): actions in order, then the next state."""

    actions: tuple[Action, ...]
    next_state: State
    #: Where in RFC 4271 this comes from, e.g. "8.2.2 Idle, Event 1".
    rfc: str


@dataclass(frozen=True)
class Alternative:
    """A transition taken when every guard in ``when`` holds (always, if empty)."""

    when: tuple[Guard, ...]
    transition: Transition

    def applies(self, flags: Flags) -> bool:
        """Whether every guard of this alternative holds for ``flags``."""
        return all(guard.holds(flags) for guard in self.when)


#: A table entry: alternatives tried in order; the last is unguarded.
Rule = tuple[Alternative, ...]


# ---------------------------------------------------------------------------
# Building the table.  Helpers only assemble plain data; TABLE holds no code.

_A = Action
_S = State
_E = Event

_START_EVENTS = (
    _E.MANUAL_START,
    _E.AUTOMATIC_START,
    _E.MANUAL_START_WITH_PASSIVE_TCP_ESTABLISHMENT,
    _E.AUTOMATIC_START_WITH_PASSIVE_TCP_ESTABLISHMENT,
    _E.AUTOMATIC_START_WITH_DAMP_PEER_OSCILLATIONS,
    _E.AUTOMATIC_START_WITH_DAMP_PEER_OSCILLATIONS_AND_PASSIVE_TCP_ESTABLISHMENT,
)

# 8.2.2 Idle, Events 1/3 and 4/5.
_START_CONNECTING = (
    _A.INITIALIZE_RESOURCES,
    _A.ZERO_CONNECT_RETRY_COUNTER,
    _A.START_CONNECT_RETRY_TIMER,
    _A.INITIATE_TCP_CONNECTION,
    _A.LISTEN_FOR_CONNECTION,
)
_START_LISTENING = (
    _A.INITIALIZE_RESOURCES,
    _A.ZERO_CONNECT_RETRY_COUNTER,
    _A.START_CONNECT_RETRY_TIMER,
    _A.LISTEN_FOR_CONNECTION,
)

# Connect/Active, Events 16/17 with DelayOpen FALSE, and Event 12.
_SEND_OPEN = (
    _A.STOP_CONNECT_RETRY_TIMER,
    _A.COMPLETE_BGP_INITIALIZATION,
    _A.SEND_OPEN,
    _A.START_HOLD_TIMER_LARGE,
)
# Connect/Active, Event 20; the timers depend on the negotiated HoldTime.
_ANSWER_OPEN = (
    _A.STOP_CONNECT_RETRY_TIMER,
    _A.COMPLETE_BGP_INITIALIZATION,
    _A.STOP_DELAY_OPEN_TIMER,
    _A.PROCESS_OPEN,
    _A.SEND_OPEN,
    _A.SEND_KEEPALIVE,
)
_NEGOTIATED_TIMERS = (_A.START_KEEPALIVE_TIMER, _A.START_HOLD_TIMER_NEGOTIATED)
_NO_TIMERS = (_A.STOP_KEEPALIVE_TIMER, _A.STOP_HOLD_TIMER)

# The common tail of an error exit to Idle from OpenSent or OpenConfirm.
_CLOSE = (
    _A.STOP_CONNECT_RETRY_TIMER,
    _A.RELEASE_RESOURCES,
    _A.DROP_TCP_CONNECTION,
    _A.INCREMENT_CONNECT_RETRY_COUNTER,
)
# The same from Established, which also deletes the peer's routes.
_CLOSE_ESTABLISHED = (
    _A.STOP_CONNECT_RETRY_TIMER,
    _A.SESSION_DOWN,
    _A.RELEASE_RESOURCES,
    _A.DROP_TCP_CONNECTION,
    _A.INCREMENT_CONNECT_RETRY_COUNTER,
)


def _g(**conditions: bool) -> tuple[Guard, ...]:
    return tuple(Guard(flag, value) for flag, value in conditions.items())


def _ref(state: State, event: Event, note: str = "") -> str:
    text = f"8.2.2 {state.rfc_name}, Event {event.value}"
    return f"{text} ({note})" if note else text


def _only(
    state: State, event: Event, actions: Iterable[Action], next_state: State, note: str = ""
) -> Rule:
    """An entry with a single, unguarded transition."""
    return (Alternative((), Transition(tuple(actions), next_state, _ref(state, event, note))),)


def _damped(
    state: State,
    event: Event,
    actions: Iterable[Action],
    when: tuple[Guard, ...] = (),
    note: str = "",
) -> Rule:
    """An exit to Idle that, with DampPeerOscillations, also damps the peer.

    Section 8.2.2 says "(optionally) performs peer oscillation damping if the
    DampPeerOscillations attribute is set to TRUE" on most exits to Idle; the
    guard makes that explicit instead of leaving it to the Factory.
    """
    actions = tuple(actions)
    rfc = _ref(state, event, note)
    return (
        Alternative(
            when + _g(damp_peer_oscillations=True),
            Transition(actions + (_A.PEER_OSCILLATION_DAMPING,), _S.IDLE, rfc),
        ),
        Alternative(when, Transition(actions, _S.IDLE, rfc)),
    )


def _start(event: Event, actions: tuple[Action, ...], next_state: State, note: str = "") -> Rule:
    """A start from Idle.

    bgpd: a pending IdleHoldTimer is stopped first, or its expiry (Event 13)
    would arrive in a state where the RFC makes it an FSM error.
    """
    rfc = _ref(_S.IDLE, event, note)
    return (
        Alternative(
            _g(idle_hold_timer_running=True),
            Transition((_A.STOP_IDLE_HOLD_TIMER,) + actions, next_state, rfc),
        ),
        Alternative((), Transition(actions, next_state, rfc)),
    )


def _idle() -> dict[tuple[State, Event], Rule]:
    s = _S.IDLE
    rules: dict[tuple[State, Event], Rule] = {}
    for event in _E:
        # "Any other event (Events 9-12, 15-28) ... does not cause change."
        rules[s, event] = _only(s, event, (), s, "ignored")
    for event in (_E.MANUAL_START, _E.AUTOMATIC_START):
        rules[s, event] = _start(event, _START_CONNECTING, _S.CONNECT)
    for event in (
        _E.MANUAL_START_WITH_PASSIVE_TCP_ESTABLISHMENT,
        _E.AUTOMATIC_START_WITH_PASSIVE_TCP_ESTABLISHMENT,
    ):
        rules[s, event] = _start(event, _START_LISTENING, _S.ACTIVE)
    for event in (_E.MANUAL_STOP, _E.AUTOMATIC_STOP):
        # Ignored by the RFC; bgpd also cancels a pending damped restart.
        rfc = _ref(s, event, "ignored; bgpd: cancels a damped restart")
        rules[s, event] = (
            Alternative(
                _g(idle_hold_timer_running=True),
                Transition((_A.STOP_IDLE_HOLD_TIMER,), s, rfc),
            ),
            Alternative((), Transition((), s, rfc)),
        )
    # Events 6, 7 and 13 "prevent peer oscillations"; the method is left to the
    # implementation.  bgpd holds the peer in Idle for IdleHoldTime and starts
    # it when the IdleHoldTimer expires.
    for event, actions, next_state in (
        (_E.AUTOMATIC_START_WITH_DAMP_PEER_OSCILLATIONS, _START_CONNECTING, _S.CONNECT),
        (
            _E.AUTOMATIC_START_WITH_DAMP_PEER_OSCILLATIONS_AND_PASSIVE_TCP_ESTABLISHMENT,
            _START_LISTENING,
            _S.ACTIVE,
        ),
    ):
        rfc = _ref(s, event, "bgpd: hold in Idle for IdleHoldTime")
        rules[s, event] = (
            Alternative(
                _g(damp_peer_oscillations=True, idle_hold_timer_running=True),
                Transition((), s, rfc),
            ),
            Alternative(
                _g(damp_peer_oscillations=True),
                Transition((_A.START_IDLE_HOLD_TIMER,), s, rfc),
            ),
        ) + _start(event, actions, next_state, "no damping: a plain automatic start")
    rfc = _ref(s, _E.IDLE_HOLD_TIMER_EXPIRES, "bgpd: the damped start")
    rules[s, _E.IDLE_HOLD_TIMER_EXPIRES] = (
        Alternative(
            _g(damp_peer_oscillations=True, passive=True),
            Transition(_START_LISTENING, _S.ACTIVE, rfc),
        ),
        Alternative(
            _g(damp_peer_oscillations=True),
            Transition(_START_CONNECTING, _S.CONNECT, rfc),
        ),
        Alternative((), Transition((), s, _ref(s, _E.IDLE_HOLD_TIMER_EXPIRES, "ignored"))),
    )
    # "BGP FSM refuses all incoming BGP connections"; 14 is not in the ignored
    # list.  bgpd: during the back-off of an automatic restart the peer's own
    # connection is accepted, so the back-off only delays our connect attempts.
    e = _E.TCP_CONNECTION_VALID
    rules[s, e] = (
        Alternative(
            _g(accept_while_idle=True),
            Transition(
                (_A.STOP_IDLE_HOLD_TIMER,) + _START_LISTENING + (_A.PROCESS_TCP_CONNECTION,),
                _S.ACTIVE,
                _ref(s, e, "bgpd: accepted while an automatic restart is pending"),
            ),
        ),
        Alternative(
            (), Transition((_A.REJECT_TCP_CONNECTION,), s, _ref(s, e, "refuses connections"))
        ),
    )
    return rules


def _connect_or_active(s: State) -> dict[tuple[State, Event], Rule]:
    """Connect and Active: section 8.2.2 describes them almost alike."""
    connect = s is _S.CONNECT
    rules: dict[tuple[State, Event], Rule] = {}
    # "any other events (Events 8, 10-11, 13, 19, 23, 25-28)"
    other = (
        (_A.STOP_CONNECT_RETRY_TIMER, _A.STOP_DELAY_OPEN_TIMER) + _CLOSE[1:]
        if connect
        else _CLOSE
    )
    for event in _E:
        rules[s, event] = _damped(s, event, other, note="any other event")
    for event in _START_EVENTS:
        rules[s, event] = _only(s, event, (), s, "ignored")

    e = _E.MANUAL_STOP
    if connect:
        rules[s, e] = _only(
            s,
            e,
            (
                _A.DROP_TCP_CONNECTION,
                _A.RELEASE_RESOURCES,
                _A.ZERO_CONNECT_RETRY_COUNTER,
                _A.STOP_CONNECT_RETRY_TIMER,
            ),
            _S.IDLE,
        )
    else:
        stop = (
            _A.STOP_DELAY_OPEN_TIMER,
            _A.RELEASE_RESOURCES,
            _A.DROP_TCP_CONNECTION,
            _A.ZERO_CONNECT_RETRY_COUNTER,
            _A.STOP_CONNECT_RETRY_TIMER,
        )
        rules[s, e] = (
            Alternative(
                _g(delay_open_timer_running=True, send_notification_without_open=True),
                Transition((_A.SEND_NOTIFICATION_CEASE,) + stop, _S.IDLE, _ref(s, e)),
            ),
            Alternative((), Transition(stop, _S.IDLE, _ref(s, e))),
        )

    e = _E.CONNECT_RETRY_TIMER_EXPIRES
    if connect:
        rules[s, e] = _only(
            s,
            e,
            (
                _A.DROP_TCP_CONNECTION,
                _A.RESTART_CONNECT_RETRY_TIMER,
                _A.STOP_DELAY_OPEN_TIMER,
                _A.INITIATE_TCP_CONNECTION,
            ),
            s,
        )
    else:
        rules[s, e] = _only(
            s, e, (_A.RESTART_CONNECT_RETRY_TIMER, _A.INITIATE_TCP_CONNECTION), _S.CONNECT
        )

    e = _E.DELAY_OPEN_TIMER_EXPIRES
    if connect:
        # bgpd: COMPLETE_BGP_INITIALIZATION, which the RFC lists on the same
        # transition from Active but not here.
        rules[s, e] = _only(
            s,
            e,
            (_A.COMPLETE_BGP_INITIALIZATION, _A.SEND_OPEN, _A.START_HOLD_TIMER_LARGE),
            _S.OPEN_SENT,
            "bgpd: completes initialization as from Active",
        )
    else:
        rules[s, e] = _only(
            s,
            e,
            (
                _A.STOP_CONNECT_RETRY_TIMER,
                _A.STOP_DELAY_OPEN_TIMER,
                _A.COMPLETE_BGP_INITIALIZATION,
                _A.SEND_OPEN,
                _A.START_HOLD_TIMER_LARGE,
            ),
            _S.OPEN_SENT,
        )

    rules[s, _E.TCP_CONNECTION_VALID] = _only(
        s, _E.TCP_CONNECTION_VALID, (_A.PROCESS_TCP_CONNECTION,), s
    )
    rules[s, _E.TCP_CR_INVALID] = _only(s, _E.TCP_CR_INVALID, (_A.REJECT_TCP_CONNECTION,), s)

    for e in (_E.TCP_CR_ACKED, _E.TCP_CONNECTION_CONFIRMED):
        rules[s, e] = (
            Alternative(
                _g(delay_open=True),
                Transition(
                    (_A.STOP_CONNECT_RETRY_TIMER, _A.START_DELAY_OPEN_TIMER), s, _ref(s, e)
                ),
            ),
            Alternative((), Transition(_SEND_OPEN, _S.OPEN_SENT, _ref(s, e))),
        )

    e = _E.TCP_CONNECTION_FAILS
    if connect:
        rules[s, e] = (
            Alternative(
                _g(delay_open_timer_running=True),
                Transition(
                    (_A.RESTART_CONNECT_RETRY_TIMER, _A.STOP_DELAY_OPEN_TIMER),
                    _S.ACTIVE,
                    _ref(s, e),
                ),
            ),
            # bgpd: to Active, not Idle: keep listening for the peer's own
            # connection until the ConnectRetryTimer makes the next attempt.
            Alternative(
                (),
                Transition(
                    (
                        _A.RESTART_CONNECT_RETRY_TIMER,
                        _A.DROP_TCP_CONNECTION,
                        _A.RELEASE_RESOURCES,
                    ),
                    _S.ACTIVE,
                    _ref(s, e, "bgpd: keeps listening in Active until the next attempt"),
                ),
            ),
        )
    else:
        rules[s, e] = _damped(
            s,
            e,
            (
                _A.RESTART_CONNECT_RETRY_TIMER,
                _A.STOP_DELAY_OPEN_TIMER,
                _A.RELEASE_RESOURCES,
                _A.INCREMENT_CONNECT_RETRY_COUNTER,
            ),
        )

    e = _E.BGP_OPEN_WITH_DELAY_OPEN_TIMER_RUNNING
    rules[s, e] = (
        Alternative(
            _g(hold_time_zero=True),
            Transition(_ANSWER_OPEN + _NO_TIMERS, _S.OPEN_CONFIRM, _ref(s, e)),
        ),
        Alternative((), Transition(_ANSWER_OPEN + _NEGOTIATED_TIMERS, _S.OPEN_CONFIRM, _ref(s, e))),
    )

    for e in (_E.BGP_HEADER_ERR, _E.BGP_OPEN_MSG_ERR):
        rules[s, e] = _damped(
            s,
            e,
            (_A.SEND_NOTIFICATION_FROM_ERROR,) + _CLOSE,
            when=_g(send_notification_without_open=True),
        ) + _damped(s, e, _CLOSE)

    e = _E.NOTIF_MSG_VER_ERR
    rules[s, e] = (
        Alternative(
            _g(delay_open_timer_running=True),
            Transition(
                (
                    _A.STOP_CONNECT_RETRY_TIMER,
                    _A.STOP_DELAY_OPEN_TIMER,
                    _A.RELEASE_RESOURCES,
                    _A.DROP_TCP_CONNECTION,
                ),
                _S.IDLE,
                _ref(s, e),
            ),
        ),
    ) + _damped(s, e, _CLOSE)
    return rules


def _open_sent() -> dict[tuple[State, Event], Rule]:
    s = _S.OPEN_SENT
    rules: dict[tuple[State, Event], Rule] = {}
    # "any other event (Events 9, 11-13, 20, 25-28)"
    for event in _E:
        rules[s, event] = _damped(
            s, event, (_A.SEND_NOTIFICATION_FSM_ERROR,) + _CLOSE, note="any other event"
        )
    rules.update(_opened_common(s))
    rules[s, _E.TCP_CONNECTION_FAILS] = _only(
        s,
        _E.TCP_CONNECTION_FAILS,
        # bgpd: STOP_HOLD_TIMER, or the large HoldTimer would expire in Active.
        (_A.DROP_TCP_CONNECTION, _A.STOP_HOLD_TIMER, _A.RESTART_CONNECT_RETRY_TIMER),
        _S.ACTIVE,
        "bgpd: also stops the HoldTimer",
    )
    e = _E.BGP_OPEN
    accept = (
        _A.PROCESS_OPEN,
        _A.STOP_DELAY_OPEN_TIMER,
        _A.STOP_CONNECT_RETRY_TIMER,
        _A.SEND_KEEPALIVE,
    )
    rules[s, e] = _damped(
        s,
        e,
        (_A.SEND_NOTIFICATION_CEASE,) + _CLOSE,
        when=_g(collision_dump=True),
        note="collision, as Event 23",
    ) + (
        Alternative(
            _g(hold_time_zero=True),
            # The large HoldTimer of OpenSent is running and must not be.
            Transition(accept + (_A.STOP_HOLD_TIMER,), _S.OPEN_CONFIRM, _ref(s, e)),
        ),
        Alternative(
            (),
            Transition(
                accept + (_A.START_KEEPALIVE_TIMER, _A.START_HOLD_TIMER_NEGOTIATED),
                _S.OPEN_CONFIRM,
                _ref(s, e),
            ),
        ),
    )
    return rules


def _open_confirm() -> dict[tuple[State, Event], Rule]:
    s = _S.OPEN_CONFIRM
    rules: dict[tuple[State, Event], Rule] = {}
    # "any other event (Events 9, 12-13, 20, 27-28)"
    for event in _E:
        rules[s, event] = _damped(
            s, event, (_A.SEND_NOTIFICATION_FSM_ERROR,) + _CLOSE, note="any other event"
        )
    rules.update(_opened_common(s))
    rules[s, _E.MANUAL_STOP] = _only(
        s,
        _E.MANUAL_STOP,
        (
            _A.SEND_NOTIFICATION_CEASE,
            _A.RELEASE_RESOURCES,
            _A.DROP_TCP_CONNECTION,
            _A.ZERO_CONNECT_RETRY_COUNTER,
            _A.STOP_CONNECT_RETRY_TIMER,
        ),
        _S.IDLE,
    )
    rules[s, _E.KEEPALIVE_TIMER_EXPIRES] = _only(
        s, _E.KEEPALIVE_TIMER_EXPIRES, (_A.SEND_KEEPALIVE, _A.RESTART_KEEPALIVE_TIMER), s
    )
    for e in (_E.TCP_CONNECTION_FAILS, _E.NOTIF_MSG):
        rules[s, e] = _damped(s, e, _CLOSE)
    e = _E.BGP_OPEN
    # An OPEN for the other connection of this peer: collision detection (6.8)
    # closes this connection (collision dump).  Otherwise the OPEN came on
    # this connection, which had its OPEN already: RFC 6608 "Receive
    # Unexpected Message in OpenConfirm State".
    rules[s, e] = _damped(
        s, e, (_A.SEND_NOTIFICATION_CEASE,) + _CLOSE, when=_g(collision_dump=True)
    ) + _damped(
        s,
        e,
        (_A.SEND_NOTIFICATION_FSM_ERROR,) + _CLOSE,
        note="bgpd: a second OPEN on this connection, RFC 6608",
    )
    e = _E.KEEPALIVE_MSG
    rules[s, e] = (
        Alternative(
            _g(hold_time_zero=True),
            Transition((_A.SESSION_ESTABLISHED,), _S.ESTABLISHED, _ref(s, e)),
        ),
        Alternative(
            (),
            Transition(
                (_A.RESTART_HOLD_TIMER, _A.SESSION_ESTABLISHED), _S.ESTABLISHED, _ref(s, e)
            ),
        ),
    )
    return rules


def _opened_common(s: State) -> dict[tuple[State, Event], Rule]:
    """Rows OpenSent and OpenConfirm share word for word."""
    rules: dict[tuple[State, Event], Rule] = {}
    for event in _START_EVENTS:
        rules[s, event] = _only(s, event, (), s, "ignored")
    rules[s, _E.MANUAL_STOP] = _only(
        s,
        _E.MANUAL_STOP,
        (
            _A.SEND_NOTIFICATION_CEASE,
            _A.STOP_CONNECT_RETRY_TIMER,
            _A.RELEASE_RESOURCES,
            _A.DROP_TCP_CONNECTION,
            _A.ZERO_CONNECT_RETRY_COUNTER,
        ),
        _S.IDLE,
    )
    rules[s, _E.AUTOMATIC_STOP] = _damped(
        s, _E.AUTOMATIC_STOP, (_A.SEND_NOTIFICATION_CEASE,) + _CLOSE
    )
    rules[s, _E.HOLD_TIMER_EXPIRES] = _damped(
        s, _E.HOLD_TIMER_EXPIRES, (_A.SEND_NOTIFICATION_HOLD_TIMER_EXPIRED,) + _CLOSE
    )
    for e in (_E.TCP_CONNECTION_VALID, _E.TCP_CR_ACKED, _E.TCP_CONNECTION_CONFIRMED):
        rules[s, e] = _only(s, e, (_A.TRACK_SECOND_CONNECTION,), s)
    rules[s, _E.TCP_CR_INVALID] = _only(s, _E.TCP_CR_INVALID, (), s, "ignored")
    for e in (_E.BGP_HEADER_ERR, _E.BGP_OPEN_MSG_ERR):
        rules[s, e] = _damped(s, e, (_A.SEND_NOTIFICATION_FROM_ERROR,) + _CLOSE)
    rules[s, _E.OPEN_COLLISION_DUMP] = _damped(
        s, _E.OPEN_COLLISION_DUMP, (_A.SEND_NOTIFICATION_CEASE,) + _CLOSE
    )
    # A version error is part of version negotiation (section 7): no
    # ConnectRetryCounter increment, no damping.
    rules[s, _E.NOTIF_MSG_VER_ERR] = _only(
        s,
        _E.NOTIF_MSG_VER_ERR,
        (_A.STOP_CONNECT_RETRY_TIMER, _A.RELEASE_RESOURCES, _A.DROP_TCP_CONNECTION),
        _S.IDLE,
    )
    return rules


def _established() -> dict[tuple[State, Event], Rule]:
    s = _S.ESTABLISHED
    rules: dict[tuple[State, Event], Rule] = {}
    # "any other event (Events 9, 12-13, 20-22)"
    fsm_error = (
        _A.SEND_NOTIFICATION_FSM_ERROR,
        _A.SESSION_DOWN,
        _A.STOP_CONNECT_RETRY_TIMER,
        _A.RELEASE_RESOURCES,
        _A.DROP_TCP_CONNECTION,
        _A.INCREMENT_CONNECT_RETRY_COUNTER,
    )
    for event in _E:
        rules[s, event] = _damped(s, event, fsm_error, note="any other event")
    for event in _START_EVENTS:
        rules[s, event] = _only(s, event, (), s, "ignored")
    rules[s, _E.MANUAL_STOP] = _only(
        s,
        _E.MANUAL_STOP,
        (
            _A.SEND_NOTIFICATION_CEASE,
            _A.STOP_CONNECT_RETRY_TIMER,
            _A.SESSION_DOWN,
            _A.RELEASE_RESOURCES,
            _A.DROP_TCP_CONNECTION,
            _A.ZERO_CONNECT_RETRY_COUNTER,
        ),
        _S.IDLE,
    )
    rules[s, _E.AUTOMATIC_STOP] = _damped(
        s, _E.AUTOMATIC_STOP, (_A.SEND_NOTIFICATION_CEASE,) + _CLOSE_ESTABLISHED
    )
    rules[s, _E.HOLD_TIMER_EXPIRES] = _damped(
        s,
        _E.HOLD_TIMER_EXPIRES,
        (_A.SEND_NOTIFICATION_HOLD_TIMER_EXPIRED,) + _CLOSE_ESTABLISHED,
        note="bgpd: also deletes the peer's routes",
    )
    e = _E.KEEPALIVE_TIMER_EXPIRES
    rules[s, e] = (
        Alternative(_g(hold_time_zero=True), Transition((_A.SEND_KEEPALIVE,), s, _ref(s, e))),
        Alternative(
            (), Transition((_A.SEND_KEEPALIVE, _A.RESTART_KEEPALIVE_TIMER), s, _ref(s, e))
        ),
    )
    for e in (_E.TCP_CONNECTION_VALID, _E.TCP_CR_ACKED, _E.TCP_CONNECTION_CONFIRMED):
        rules[s, e] = _only(s, e, (_A.TRACK_SECOND_CONNECTION,), s)
    rules[s, _E.TCP_CR_INVALID] = _only(s, _E.TCP_CR_INVALID, (), s, "ignored")
    collision = (_A.SEND_NOTIFICATION_CEASE,) + _CLOSE_ESTABLISHED
    e = _E.BGP_OPEN
    # Without a collision dump the OPEN came on the Established connection
    # itself (the Factory resolves an OPEN on a second connection, 6.8):
    # "any other event", RFC 6608 "Receive Unexpected Message in Established".
    rules[s, e] = _damped(
        s, e, collision, when=_g(collision_detect_established=True, collision_dump=True)
    ) + _damped(s, e, fsm_error, note="bgpd: an OPEN on the session, RFC 6608")
    rules[s, _E.OPEN_COLLISION_DUMP] = _damped(s, _E.OPEN_COLLISION_DUMP, collision)
    for e in (_E.TCP_CONNECTION_FAILS, _E.NOTIF_MSG_VER_ERR, _E.NOTIF_MSG):
        rules[s, e] = _damped(
            s, e, _CLOSE_ESTABLISHED, note="bgpd: damping as on the other exits"
        )
    e = _E.KEEPALIVE_MSG
    rules[s, e] = (
        Alternative(_g(hold_time_zero=True), Transition((), s, _ref(s, e))),
        Alternative((), Transition((_A.RESTART_HOLD_TIMER,), s, _ref(s, e))),
    )
    e = _E.UPDATE_MSG
    rules[s, e] = (
        Alternative(_g(hold_time_zero=True), Transition((_A.PROCESS_UPDATE,), s, _ref(s, e))),
        Alternative(
            (), Transition((_A.PROCESS_UPDATE, _A.RESTART_HOLD_TIMER), s, _ref(s, e))
        ),
    )
    rules[s, _E.UPDATE_MSG_ERR] = _damped(
        s, _E.UPDATE_MSG_ERR, (_A.SEND_NOTIFICATION_FROM_ERROR,) + _CLOSE_ESTABLISHED
    )
    # Section 6.1: header errors MUST be reported as Message Header Error,
    # although 8.2.2 lists Event 21 among Established's "any other" events.
    rules[s, _E.BGP_HEADER_ERR] = _damped(
        s,
        _E.BGP_HEADER_ERR,
        (_A.SEND_NOTIFICATION_FROM_ERROR,) + fsm_error[1:],
        note="bgpd: Message Header Error per 6.1",
    )
    return rules


def _validate(table: Mapping[tuple[State, Event], Rule]) -> None:
    """Refuse a table on which ``step`` could fail: checked once, at import."""
    for state in State:
        for event in Event:
            rule = table.get((state, event))
            if not rule:
                raise ValueError(f"no rule for {state.name}, {event.name}")
            if rule[-1].when:
                raise ValueError(f"last alternative guarded for {state.name}, {event.name}")
            for alternative in rule:
                for guard in alternative.when:
                    if guard.flag not in _FLAG_NAMES:
                        raise ValueError(f"unknown flag {guard.flag!r} in {state.name}")


def _build() -> Mapping[tuple[State, Event], Rule]:
    rules: dict[tuple[State, Event], Rule] = {}
    rules.update(_idle())
    rules.update(_connect_or_active(_S.CONNECT))
    rules.update(_connect_or_active(_S.ACTIVE))
    rules.update(_open_sent())
    rules.update(_open_confirm())
    rules.update(_established())
    ordered = {(state, event): rules[state, event] for state in State for event in Event}
    _validate(ordered)
    return MappingProxyType(ordered)


#: Every (State, Event) pair, 6 x 28, to its guarded alternatives.
TABLE: Mapping[tuple[State, Event], Rule] = _build()


def step(state: State, event: Event, flags: Flags = NO_FLAGS) -> Transition:
    """The transition RFC 4271 section 8.2.2 prescribes for ``event`` in ``state``."""
    rule = TABLE[state, event]
    for alternative in rule:
        if alternative.applies(flags):
            return alternative.transition
    # Unreachable: _validate makes every rule end with an unguarded alternative.
    return rule[-1].transition


_FSM_ERROR_SUBCODES = {
    # RFC 6608 section 3: "Receive Unexpected Message in <state> State".
    State.OPEN_SENT: 1,
    State.OPEN_CONFIRM: 2,
    State.ESTABLISHED: 3,
}


#: The most the KeepaliveTimer is set short of a third of the hold time.  The
#: timer fires when the reactor is free: a long batch of work (a garbage
#: collection, a chunk of a table being loaded) delays it, and issue 13's bound
#: for such a stall is half a second.  Without the guard, a timer jittered to
#: exactly a third (RFC 4271 section 10 allows a factor up to 1.0) plus a stall
#: made the peer wait longer than the third the RFC names as the reasonable
#: maximum between KEEPALIVEs (section 4.4): 3.2 s with a hold time of 9 s.
KEEPALIVE_GUARD = 0.5


def keepalive_interval(hold_time: float, jitter: float) -> float:
    """KeepaliveTime for a negotiated ``hold_time`` and a jitter factor in 0.75..1.0.

    A third of the hold time (RFC 4271 section 4.4) less :data:`KEEPALIVE_GUARD`
    (at most a quarter of that third, for the shortest hold times), times the
    jitter of section 10, so that a KEEPALIVE delayed by a stall up to the
    guard still leaves within a third of the hold time.
    """
    third = hold_time / 3.0
    return (third - min(KEEPALIVE_GUARD, third / 4.0)) * jitter


def fsm_error_subcode(state: State) -> int:
    """The RFC 6608 subcode of a Finite State Machine Error sent from ``state``.

    0 (Unspecified Error) for states that never send one.
    """
    return _FSM_ERROR_SUBCODES.get(state, 0)


def describe_table() -> str:
    """The whole table as text, one line per alternative of each (state, event).

    Columns: state, event (RFC name and number), guard, next state, actions.
    """
    width_event = max(len(f"{e.rfc_name} ({e.value})") for e in Event)
    width_guard = max(
        len(_describe_guard(rule, i)) for rule in TABLE.values() for i in range(len(rule))
    )
    width_state = max(len(s.rfc_name) for s in State)
    header = (
        f"{'State':<{width_state}}  {'Event':<{width_event}}  {'Guard':<{width_guard}}"
        f"  {'Next':<{width_state}}  Actions"
    )
    lines = [header, "-" * len(header)]
    for (state, event), rule in TABLE.items():
        for i, alternative in enumerate(rule):
            transition = alternative.transition
            actions = ", ".join(a.name for a in transition.actions) or "(none)"
            lines.append(
                f"{state.rfc_name:<{width_state}}  "
                f"{f'{event.rfc_name} ({event.value})':<{width_event}}  "
                f"{_describe_guard(rule, i):<{width_guard}}  "
                f"{transition.next_state.rfc_name:<{width_state}}  {actions}"
            )
    return "\n".join(lines) + "\n"


def _describe_guard(rule: Rule, index: int) -> str:
    when = rule[index].when
    if when:
        return " and ".join(str(guard) for guard in when)
    return "otherwise" if index else "-"
