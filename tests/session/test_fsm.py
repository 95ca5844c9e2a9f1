"""Tests for bgpd.session.fsm, the RFC 4271 section 8.2.2 state table.

Each test names the (State, Event) pairs it checks with ``@covers``; a test
fails if it declares a pair it never steps, and ``CoverageTests`` fails while
any of the 6 x 28 pairs is declared by no test (the PyBal way).  Expected
actions are written out here from the RFC text, not taken from the module.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import sys
from collections.abc import Callable, Iterable

from twisted.trial.reporter import TestResult
from twisted.trial.unittest import SynchronousTestCase

from bgpd.session import fsm
from bgpd.session.fsm import (
    NO_FLAGS,
    TABLE,
    Action,
    Event,
    Flags,
    State,
    Transition,
    describe_table,
    fsm_error_subcode,
    step,
)

A = Action
S = State
E = Event

Pair = tuple[State, Event]

#: Pairs some test declares it checks.
_DECLARED: set[Pair] = set()
#: Pairs the running test has stepped; reset by each @covers test.
_STEPPED: set[Pair] = set()


def covers(*pairs: Pair | Iterable[Pair]) -> Callable:
    """Declare the (state, event) pairs a test checks, and make sure it steps them."""
    declared: set[Pair] = set()
    for item in pairs:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], State):
            declared.add(item)
        else:
            declared.update(item)

    def decorate(test: Callable) -> Callable:
        _DECLARED.update(declared)

        @functools.wraps(test)
        def wrapper(self: SynchronousTestCase) -> None:
            _STEPPED.clear()
            test(self)
            missing = declared - _STEPPED
            if missing:
                self.fail(f"declared but never stepped: {sorted(missing)}")

        return wrapper

    return decorate


def _step(state: State, event: Event, flags: Flags = NO_FLAGS) -> Transition:
    _STEPPED.add((state, event))
    return step(state, event, flags)


def _pairs(states: Iterable[State], events: Iterable[Event]) -> set[Pair]:
    return set(itertools.product(states, events))


def _all_flags() -> list[Flags]:
    names = [field.name for field in dataclasses.fields(Flags)]
    return [
        Flags(**dict(zip(names, values, strict=True)))
        for values in itertools.product((False, True), repeat=len(names))
    ]


ALL_FLAGS = _all_flags()
DAMP = Flags(damp_peer_oscillations=True)

START_EVENTS = (E(1), E(3), E(4), E(5), E(6), E(7))
NOT_IDLE = (S.CONNECT, S.ACTIVE, S.OPEN_SENT, S.OPEN_CONFIRM, S.ESTABLISHED)

# RFC 4271 8.2.2, Idle, Events 1/3 and 4/5.
START_CONNECTING = (
    A.INITIALIZE_RESOURCES,
    A.ZERO_CONNECT_RETRY_COUNTER,
    A.START_CONNECT_RETRY_TIMER,
    A.INITIATE_TCP_CONNECTION,
    A.LISTEN_FOR_CONNECTION,
)
START_LISTENING = (
    A.INITIALIZE_RESOURCES,
    A.ZERO_CONNECT_RETRY_COUNTER,
    A.START_CONNECT_RETRY_TIMER,
    A.LISTEN_FOR_CONNECTION,
)
# Connect/Active, Events 16/17 with DelayOpen FALSE.
SEND_OPEN = (
    A.STOP_CONNECT_RETRY_TIMER,
    A.COMPLETE_BGP_INITIALIZATION,
    A.SEND_OPEN,
    A.START_HOLD_TIMER_LARGE,
)
# The usual error exit to Idle from OpenSent/OpenConfirm, after the NOTIFICATION.
CLOSE = (
    A.STOP_CONNECT_RETRY_TIMER,
    A.RELEASE_RESOURCES,
    A.DROP_TCP_CONNECTION,
    A.INCREMENT_CONNECT_RETRY_COUNTER,
)
CLOSE_ESTABLISHED = (
    A.STOP_CONNECT_RETRY_TIMER,
    A.SESSION_DOWN,
    A.RELEASE_RESOURCES,
    A.DROP_TCP_CONNECTION,
    A.INCREMENT_CONNECT_RETRY_COUNTER,
)

# The events each state's "any other event" paragraph lists (RFC 4271 8.2.2),
# less Established's Event 21, which bgpd answers with a Message Header Error.
OTHER_EVENTS = {
    S.CONNECT: (E(8), E(10), E(11), E(13), E(19), E(23), E(25), E(26), E(27), E(28)),
    S.ACTIVE: (E(8), E(10), E(11), E(13), E(19), E(23), E(25), E(26), E(27), E(28)),
    S.OPEN_SENT: (E(9), E(11), E(12), E(13), E(20), E(25), E(26), E(27), E(28)),
    S.OPEN_CONFIRM: (E(9), E(12), E(13), E(20), E(27), E(28)),
    S.ESTABLISHED: (E(9), E(12), E(13), E(20), E(22)),
}


class TransitionAssertions:
    """Helpers shared by the test cases below."""

    def assert_transition(
        self, transition: Transition, actions: Iterable[Action], next_state: State
    ) -> None:
        """``transition`` performs exactly ``actions``, in order, then enters ``next_state``."""
        self.assertEqual(
            (transition.actions, transition.next_state), (tuple(actions), next_state)
        )

    def assert_damped_exit(
        self, state: State, event: Event, actions: tuple[Action, ...], flags: Flags = NO_FLAGS
    ) -> None:
        """Idle with ``actions``; with DampPeerOscillations also damping, last."""
        self.assert_transition(_step(state, event, flags), actions, S.IDLE)
        damped = dataclasses.replace(flags, damp_peer_oscillations=True)
        self.assert_transition(
            _step(state, event, damped), actions + (A.PEER_OSCILLATION_DAMPING,), S.IDLE
        )


class NumberingTests(SynchronousTestCase):
    """States and events carry the numbers RFC 4271 gives them."""

    def test_states(self):
        """The six states are numbered 1 to 6 in RFC order."""
        self.assertEqual(
            [(s.name, s.value) for s in State],
            [
                ("IDLE", 1),
                ("CONNECT", 2),
                ("ACTIVE", 3),
                ("OPEN_SENT", 4),
                ("OPEN_CONFIRM", 5),
                ("ESTABLISHED", 6),
            ],
        )

    def test_events(self):
        """All 28 events exist with the section 8.1 numbers."""
        self.assertEqual([e.value for e in Event], list(range(1, 29)))
        expected = {
            "MANUAL_START": 1,
            "MANUAL_STOP": 2,
            "AUTOMATIC_START": 3,
            "MANUAL_START_WITH_PASSIVE_TCP_ESTABLISHMENT": 4,
            "AUTOMATIC_START_WITH_PASSIVE_TCP_ESTABLISHMENT": 5,
            "AUTOMATIC_START_WITH_DAMP_PEER_OSCILLATIONS": 6,
            "AUTOMATIC_START_WITH_DAMP_PEER_OSCILLATIONS_AND_PASSIVE_TCP_ESTABLISHMENT": 7,
            "AUTOMATIC_STOP": 8,
            "CONNECT_RETRY_TIMER_EXPIRES": 9,
            "HOLD_TIMER_EXPIRES": 10,
            "KEEPALIVE_TIMER_EXPIRES": 11,
            "DELAY_OPEN_TIMER_EXPIRES": 12,
            "IDLE_HOLD_TIMER_EXPIRES": 13,
            "TCP_CONNECTION_VALID": 14,
            "TCP_CR_INVALID": 15,
            "TCP_CR_ACKED": 16,
            "TCP_CONNECTION_CONFIRMED": 17,
            "TCP_CONNECTION_FAILS": 18,
            "BGP_OPEN": 19,
            "BGP_OPEN_WITH_DELAY_OPEN_TIMER_RUNNING": 20,
            "BGP_HEADER_ERR": 21,
            "BGP_OPEN_MSG_ERR": 22,
            "OPEN_COLLISION_DUMP": 23,
            "NOTIF_MSG_VER_ERR": 24,
            "NOTIF_MSG": 25,
            "KEEPALIVE_MSG": 26,
            "UPDATE_MSG": 27,
            "UPDATE_MSG_ERR": 28,
        }
        self.assertEqual({e.name: e.value for e in Event}, expected)

    def test_rfc_names(self):
        """States and events also carry the RFC's spelling for logs."""
        self.assertEqual(S.OPEN_SENT.rfc_name, "OpenSent")
        self.assertEqual(E.TCP_CR_ACKED.rfc_name, "Tcp_CR_Acked")
        self.assertEqual(E.KEEPALIVE_MSG.rfc_name, "KeepAliveMsg")
        self.assertEqual(len({e.rfc_name for e in Event}), 28)


class TableTests(SynchronousTestCase):
    """The table as a whole: complete, plain, total."""

    def test_every_pair_present(self):
        """TABLE holds exactly the 168 (State, Event) pairs."""
        self.assertEqual(set(TABLE), _pairs(State, Event))
        self.assertEqual(len(TABLE), 168)

    def test_last_alternative_unguarded(self):
        """Every entry ends with an alternative that always applies."""
        for pair, rule in TABLE.items():
            self.assertTrue(rule, pair)
            self.assertEqual(rule[-1].when, (), pair)

    def test_guards_name_flags(self):
        """Every guard names a boolean field of Flags."""
        names = {field.name for field in dataclasses.fields(Flags)}
        for rule in TABLE.values():
            for alternative in rule:
                for guard in alternative.when:
                    self.assertIn(guard.flag, names)
                    self.assertIsInstance(guard.value, bool)

    def test_table_is_read_only(self):
        """TABLE cannot be changed at run time."""
        with self.assertRaises(TypeError):
            TABLE[S.IDLE, E.MANUAL_START] = ()  # type: ignore[index]

    def test_step_never_raises(self):
        """step answers every pair under every combination of flags."""
        self.assertEqual(len(ALL_FLAGS), 2 ** len(dataclasses.fields(Flags)))
        for state, event in TABLE:
            for flags in ALL_FLAGS:
                transition = step(state, event, flags)
                self.assertIsInstance(transition.next_state, State)
                for action in transition.actions:
                    self.assertIsInstance(action, Action)

    def test_step_default_flags(self):
        """step works without flags and treats plain ints as states and events."""
        self.assertEqual(step(S.IDLE, E.MANUAL_START), step(1, 1))  # type: ignore[arg-type]

    def test_rfc_references(self):
        """Every transition cites the section 8.2.2 paragraph of its state and event."""
        for (state, event), rule in TABLE.items():
            for alternative in rule:
                self.assertTrue(
                    alternative.transition.rfc.startswith(
                        f"8.2.2 {state.rfc_name}, Event {event.value}"
                    ),
                    alternative.transition.rfc,
                )

    def test_every_action_used(self):
        """Each Action is named by some transition, so a Factory needs no dead handlers."""
        used = {
            action
            for rule in TABLE.values()
            for alternative in rule
            for action in alternative.transition.actions
        }
        self.assertEqual(used, set(Action))

    def test_no_action_twice(self):
        """No transition names the same action twice."""
        for pair, rule in TABLE.items():
            for alternative in rule:
                actions = alternative.transition.actions
                self.assertEqual(len(actions), len(set(actions)), pair)

    def test_exits_to_idle_release_resources(self):
        """Leaving a state for Idle always releases resources and stops the retry timer."""
        for (state, _event), rule in TABLE.items():
            for alternative in rule:
                transition = alternative.transition
                if state is S.IDLE or transition.next_state is not S.IDLE:
                    continue
                self.assertIn(A.RELEASE_RESOURCES, transition.actions, transition.rfc)
                self.assertTrue(
                    {A.STOP_CONNECT_RETRY_TIMER, A.RESTART_CONNECT_RETRY_TIMER}
                    & set(transition.actions),
                    transition.rfc,
                )

    def test_standard_library_only(self):
        """The module imports nothing outside the standard library."""
        tree = ast.parse(inspect.getsource(fsm))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            for root in roots:
                self.assertIn(root, sys.stdlib_module_names | {"__future__"})

    def test_describe_table(self):
        """describe_table names every state and event, one line per alternative."""
        text = describe_table()
        for state in State:
            self.assertIn(state.rfc_name, text)
        for event in Event:
            self.assertIn(f"{event.rfc_name} ({event.value})", text)
        lines = text.splitlines()
        alternatives = sum(len(rule) for rule in TABLE.values())
        self.assertEqual(len(lines), 2 + alternatives)
        [line] = [
            line
            for line in lines
            if line.startswith("Connect ") and "Tcp_CR_Acked" in line and "delay_open" in line
        ]
        self.assertIn("START_DELAY_OPEN_TIMER", line)


class FsmErrorSubcodeTests(SynchronousTestCase):
    """RFC 6608 subcodes of the Finite State Machine Error."""

    def test_subcodes(self):
        """OpenSent 1, OpenConfirm 2, Established 3, anything else 0."""
        self.assertEqual(
            {state: fsm_error_subcode(state) for state in State},
            {
                S.IDLE: 0,
                S.CONNECT: 0,
                S.ACTIVE: 0,
                S.OPEN_SENT: 1,
                S.OPEN_CONFIRM: 2,
                S.ESTABLISHED: 3,
            },
        )


class IdleTests(TransitionAssertions, SynchronousTestCase):
    """RFC 4271 8.2.2, Idle state."""

    @covers((S.IDLE, E.MANUAL_START), (S.IDLE, E.AUTOMATIC_START))
    def test_start(self):
        """ManualStart and AutomaticStart connect and listen, then enter Connect."""
        for event in (E.MANUAL_START, E.AUTOMATIC_START):
            self.assert_transition(_step(S.IDLE, event), START_CONNECTING, S.CONNECT)
        self.assertEqual(
            _step(S.IDLE, E.MANUAL_START).rfc, "8.2.2 Idle, Event 1"
        )

    @covers((S.IDLE, E(4)), (S.IDLE, E(5)))
    def test_passive_start(self):
        """The PassiveTcpEstablishment starts only listen, then enter Active."""
        for event in (E(4), E(5)):
            self.assert_transition(_step(S.IDLE, event), START_LISTENING, S.ACTIVE)

    @covers(_pairs([S.IDLE], (E(1), E(3), E(4), E(5))))
    def test_start_cancels_idle_hold_timer(self):
        """A start while a damped restart is pending stops the IdleHoldTimer first."""
        running = Flags(idle_hold_timer_running=True)
        for event, actions, state in (
            (E(1), START_CONNECTING, S.CONNECT),
            (E(3), START_CONNECTING, S.CONNECT),
            (E(4), START_LISTENING, S.ACTIVE),
            (E(5), START_LISTENING, S.ACTIVE),
        ):
            self.assert_transition(
                _step(S.IDLE, event, running), (A.STOP_IDLE_HOLD_TIMER,) + actions, state
            )

    @covers((S.IDLE, E(6)), (S.IDLE, E(7)))
    def test_damped_start(self):
        """With DampPeerOscillations the damped starts hold the peer in Idle."""
        for event in (E(6), E(7)):
            self.assert_transition(_step(S.IDLE, event, DAMP), (A.START_IDLE_HOLD_TIMER,), S.IDLE)
            already = Flags(damp_peer_oscillations=True, idle_hold_timer_running=True)
            self.assert_transition(_step(S.IDLE, event, already), (), S.IDLE)
        # Without damping configured they are plain automatic starts.
        self.assert_transition(_step(S.IDLE, E(6)), START_CONNECTING, S.CONNECT)
        self.assert_transition(_step(S.IDLE, E(7)), START_LISTENING, S.ACTIVE)

    @covers((S.IDLE, E.IDLE_HOLD_TIMER_EXPIRES))
    def test_idle_hold_timer_expires(self):
        """The IdleHoldTimer's expiry performs the damped start, actively or passively."""
        e = E.IDLE_HOLD_TIMER_EXPIRES
        self.assert_transition(_step(S.IDLE, e, DAMP), START_CONNECTING, S.CONNECT)
        passive = Flags(damp_peer_oscillations=True, passive=True)
        self.assert_transition(_step(S.IDLE, e, passive), START_LISTENING, S.ACTIVE)
        # A stray expiry without damping is ignored like any other Idle event.
        self.assert_transition(_step(S.IDLE, e), (), S.IDLE)

    @covers((S.IDLE, E.MANUAL_STOP), (S.IDLE, E.AUTOMATIC_STOP))
    def test_stop_ignored(self):
        """Stops are ignored in Idle, except that they cancel a pending damped start."""
        for event in (E.MANUAL_STOP, E.AUTOMATIC_STOP):
            self.assert_transition(_step(S.IDLE, event), (), S.IDLE)
            self.assert_transition(
                _step(S.IDLE, event, Flags(idle_hold_timer_running=True)),
                (A.STOP_IDLE_HOLD_TIMER,),
                S.IDLE,
            )

    @covers((S.IDLE, E.TCP_CONNECTION_VALID))
    def test_refuses_connections(self):
        """Idle refuses an incoming connection unless an automatic restart is pending."""
        for flags in (NO_FLAGS, Flags(idle_hold_timer_running=True), DAMP):
            self.assert_transition(
                _step(S.IDLE, E.TCP_CONNECTION_VALID, flags), (A.REJECT_TCP_CONNECTION,), S.IDLE
            )

    @covers((S.IDLE, E.TCP_CONNECTION_VALID))
    def test_accepts_during_back_off(self):
        """bgpd: during an automatic restart's back-off the peer's connection is accepted."""
        flags = Flags(damp_peer_oscillations=True, idle_hold_timer_running=True,
                      accept_while_idle=True)
        self.assert_transition(
            _step(S.IDLE, E.TCP_CONNECTION_VALID, flags),
            (A.STOP_IDLE_HOLD_TIMER,) + START_LISTENING + (A.PROCESS_TCP_CONNECTION,),
            S.ACTIVE,
        )

    @covers(_pairs([S.IDLE], [E(n) for n in (9, 10, 11, 12, *range(15, 29))]))
    def test_other_events_ignored(self):
        """Events 9-12 and 15-28 change nothing in Idle, whatever the flags."""
        for n in (9, 10, 11, 12, *range(15, 29)):
            for flags in (NO_FLAGS, ALL_FLAGS[-1]):
                self.assert_transition(_step(S.IDLE, E(n), flags), (), S.IDLE)


class StartEventsTests(TransitionAssertions, SynchronousTestCase):
    """Start events are ignored outside Idle."""

    @covers(_pairs(NOT_IDLE, START_EVENTS))
    def test_ignored(self):
        """Events 1 and 3-7 do nothing in Connect, Active, OpenSent, OpenConfirm, Established."""
        for state, event in _pairs(NOT_IDLE, START_EVENTS):
            for flags in (NO_FLAGS, ALL_FLAGS[-1]):
                self.assert_transition(_step(state, event, flags), (), state)


class ManualStopTests(TransitionAssertions, SynchronousTestCase):
    """ManualStop (Event 2) in every state."""

    @covers(_pairs(State, [E.MANUAL_STOP]))
    def test_manual_stop_everywhere(self):
        """ManualStop ends in Idle with ConnectRetryCounter zeroed and nothing damped."""
        expected = {
            S.IDLE: (),
            S.CONNECT: (
                A.DROP_TCP_CONNECTION,
                A.RELEASE_RESOURCES,
                A.ZERO_CONNECT_RETRY_COUNTER,
                A.STOP_CONNECT_RETRY_TIMER,
            ),
            S.ACTIVE: (
                A.STOP_DELAY_OPEN_TIMER,
                A.RELEASE_RESOURCES,
                A.DROP_TCP_CONNECTION,
                A.ZERO_CONNECT_RETRY_COUNTER,
                A.STOP_CONNECT_RETRY_TIMER,
            ),
            S.OPEN_SENT: (
                A.SEND_NOTIFICATION_CEASE,
                A.STOP_CONNECT_RETRY_TIMER,
                A.RELEASE_RESOURCES,
                A.DROP_TCP_CONNECTION,
                A.ZERO_CONNECT_RETRY_COUNTER,
            ),
            S.OPEN_CONFIRM: (
                A.SEND_NOTIFICATION_CEASE,
                A.RELEASE_RESOURCES,
                A.DROP_TCP_CONNECTION,
                A.ZERO_CONNECT_RETRY_COUNTER,
                A.STOP_CONNECT_RETRY_TIMER,
            ),
            S.ESTABLISHED: (
                A.SEND_NOTIFICATION_CEASE,
                A.STOP_CONNECT_RETRY_TIMER,
                A.SESSION_DOWN,
                A.RELEASE_RESOURCES,
                A.DROP_TCP_CONNECTION,
                A.ZERO_CONNECT_RETRY_COUNTER,
            ),
        }
        for state, actions in expected.items():
            self.assert_transition(_step(state, E.MANUAL_STOP, DAMP), actions, S.IDLE)

    @covers((S.ACTIVE, E.MANUAL_STOP))
    def test_active_cease_while_delaying_open(self):
        """Active sends a Cease first if delaying OPEN with SendNOTIFICATIONwithoutOPEN."""
        both = Flags(delay_open_timer_running=True, send_notification_without_open=True)
        transition = _step(S.ACTIVE, E.MANUAL_STOP, both)
        self.assertEqual(transition.actions[0], A.SEND_NOTIFICATION_CEASE)
        self.assertEqual(transition.next_state, S.IDLE)
        for flags in (
            Flags(delay_open_timer_running=True),
            Flags(send_notification_without_open=True),
        ):
            self.assertNotIn(
                A.SEND_NOTIFICATION_CEASE, _step(S.ACTIVE, E.MANUAL_STOP, flags).actions
            )


class ConnectTests(TransitionAssertions, SynchronousTestCase):
    """RFC 4271 8.2.2, Connect state."""

    @covers((S.CONNECT, E.CONNECT_RETRY_TIMER_EXPIRES))
    def test_connect_retry_timer_expires(self):
        """The retry timer drops the attempt and connects again, staying in Connect."""
        self.assert_transition(
            _step(S.CONNECT, E.CONNECT_RETRY_TIMER_EXPIRES),
            (
                A.DROP_TCP_CONNECTION,
                A.RESTART_CONNECT_RETRY_TIMER,
                A.STOP_DELAY_OPEN_TIMER,
                A.INITIATE_TCP_CONNECTION,
            ),
            S.CONNECT,
        )

    @covers((S.CONNECT, E.DELAY_OPEN_TIMER_EXPIRES))
    def test_delay_open_timer_expires(self):
        """When the DelayOpenTimer expires the OPEN goes out and the FSM enters OpenSent."""
        self.assert_transition(
            _step(S.CONNECT, E.DELAY_OPEN_TIMER_EXPIRES),
            (A.COMPLETE_BGP_INITIALIZATION, A.SEND_OPEN, A.START_HOLD_TIMER_LARGE),
            S.OPEN_SENT,
        )

    @covers((S.CONNECT, E.TCP_CONNECTION_VALID), (S.CONNECT, E.TCP_CR_INVALID))
    def test_connection_requests(self):
        """Valid requests are processed and invalid ones rejected, staying in Connect."""
        self.assert_transition(
            _step(S.CONNECT, E.TCP_CONNECTION_VALID), (A.PROCESS_TCP_CONNECTION,), S.CONNECT
        )
        self.assert_transition(
            _step(S.CONNECT, E.TCP_CR_INVALID), (A.REJECT_TCP_CONNECTION,), S.CONNECT
        )

    @covers((S.CONNECT, E.TCP_CR_ACKED), (S.CONNECT, E.TCP_CONNECTION_CONFIRMED))
    def test_connection_up(self):
        """A connection sends OPEN and enters OpenSent, or with DelayOpen waits in Connect."""
        for event in (E.TCP_CR_ACKED, E.TCP_CONNECTION_CONFIRMED):
            self.assert_transition(_step(S.CONNECT, event), SEND_OPEN, S.OPEN_SENT)
            self.assert_transition(
                _step(S.CONNECT, event, Flags(delay_open=True)),
                (A.STOP_CONNECT_RETRY_TIMER, A.START_DELAY_OPEN_TIMER),
                S.CONNECT,
            )

    @covers((S.CONNECT, E.TCP_CONNECTION_FAILS))
    def test_connection_fails(self):
        """A failure goes to Active, listening until the ConnectRetryTimer retries.

        RFC 4271 sends Connect to Idle when the DelayOpenTimer is not
        running; bgpd goes to Active as FRR does, so a peer that only dials
        in is accepted between our attempts.
        """
        self.assert_transition(
            _step(S.CONNECT, E.TCP_CONNECTION_FAILS, Flags(delay_open_timer_running=True)),
            (A.RESTART_CONNECT_RETRY_TIMER, A.STOP_DELAY_OPEN_TIMER),
            S.ACTIVE,
        )
        for flags in (NO_FLAGS, DAMP):
            self.assert_transition(
                _step(S.CONNECT, E.TCP_CONNECTION_FAILS, flags),
                (A.RESTART_CONNECT_RETRY_TIMER, A.DROP_TCP_CONNECTION, A.RELEASE_RESOURCES),
                S.ACTIVE,
            )


class ConnectOrActiveTests(TransitionAssertions, SynchronousTestCase):
    """Paragraphs section 8.2.2 repeats for Connect and Active."""

    @covers(_pairs([S.CONNECT, S.ACTIVE], [E.BGP_OPEN_WITH_DELAY_OPEN_TIMER_RUNNING]))
    def test_open_while_delaying(self):
        """An OPEN during DelayOpen is answered with OPEN and KEEPALIVE: OpenConfirm."""
        answer = (
            A.STOP_CONNECT_RETRY_TIMER,
            A.COMPLETE_BGP_INITIALIZATION,
            A.STOP_DELAY_OPEN_TIMER,
            A.PROCESS_OPEN,
            A.SEND_OPEN,
            A.SEND_KEEPALIVE,
        )
        e = E.BGP_OPEN_WITH_DELAY_OPEN_TIMER_RUNNING
        for state in (S.CONNECT, S.ACTIVE):
            self.assert_transition(
                _step(state, e),
                answer + (A.START_KEEPALIVE_TIMER, A.START_HOLD_TIMER_NEGOTIATED),
                S.OPEN_CONFIRM,
            )
            self.assert_transition(
                _step(state, e, Flags(hold_time_zero=True)),
                answer + (A.STOP_KEEPALIVE_TIMER, A.STOP_HOLD_TIMER),
                S.OPEN_CONFIRM,
            )

    @covers(_pairs([S.CONNECT, S.ACTIVE], [E.BGP_HEADER_ERR, E.BGP_OPEN_MSG_ERR]))
    def test_message_errors(self):
        """Header and OPEN errors go to Idle, notifying only with SendNOTIFICATIONwithoutOPEN."""
        for state in (S.CONNECT, S.ACTIVE):
            for event in (E.BGP_HEADER_ERR, E.BGP_OPEN_MSG_ERR):
                self.assert_damped_exit(state, event, CLOSE)
                self.assert_damped_exit(
                    state,
                    event,
                    (A.SEND_NOTIFICATION_FROM_ERROR,) + CLOSE,
                    Flags(send_notification_without_open=True),
                )

    @covers(_pairs([S.CONNECT, S.ACTIVE], [E.NOTIF_MSG_VER_ERR]))
    def test_version_error(self):
        """A version error while delaying OPEN neither counts nor damps; otherwise both."""
        delaying = Flags(delay_open_timer_running=True, damp_peer_oscillations=True)
        for state in (S.CONNECT, S.ACTIVE):
            self.assert_transition(
                _step(state, E.NOTIF_MSG_VER_ERR, delaying),
                (
                    A.STOP_CONNECT_RETRY_TIMER,
                    A.STOP_DELAY_OPEN_TIMER,
                    A.RELEASE_RESOURCES,
                    A.DROP_TCP_CONNECTION,
                ),
                S.IDLE,
            )
            self.assert_damped_exit(state, E.NOTIF_MSG_VER_ERR, CLOSE)


class ActiveTests(TransitionAssertions, SynchronousTestCase):
    """RFC 4271 8.2.2, Active state."""

    @covers((S.ACTIVE, E.CONNECT_RETRY_TIMER_EXPIRES))
    def test_connect_retry_timer_expires(self):
        """The retry timer makes Active try to connect: Connect."""
        self.assert_transition(
            _step(S.ACTIVE, E.CONNECT_RETRY_TIMER_EXPIRES),
            (A.RESTART_CONNECT_RETRY_TIMER, A.INITIATE_TCP_CONNECTION),
            S.CONNECT,
        )

    @covers((S.ACTIVE, E.DELAY_OPEN_TIMER_EXPIRES))
    def test_delay_open_timer_expires(self):
        """When the DelayOpenTimer expires the OPEN goes out: OpenSent."""
        self.assert_transition(
            _step(S.ACTIVE, E.DELAY_OPEN_TIMER_EXPIRES),
            (
                A.STOP_CONNECT_RETRY_TIMER,
                A.STOP_DELAY_OPEN_TIMER,
                A.COMPLETE_BGP_INITIALIZATION,
                A.SEND_OPEN,
                A.START_HOLD_TIMER_LARGE,
            ),
            S.OPEN_SENT,
        )

    @covers((S.ACTIVE, E.TCP_CONNECTION_VALID), (S.ACTIVE, E.TCP_CR_INVALID))
    def test_connection_requests(self):
        """Valid requests are processed and invalid ones rejected, staying in Active."""
        self.assert_transition(
            _step(S.ACTIVE, E.TCP_CONNECTION_VALID), (A.PROCESS_TCP_CONNECTION,), S.ACTIVE
        )
        self.assert_transition(
            _step(S.ACTIVE, E.TCP_CR_INVALID), (A.REJECT_TCP_CONNECTION,), S.ACTIVE
        )

    @covers((S.ACTIVE, E.TCP_CR_ACKED), (S.ACTIVE, E.TCP_CONNECTION_CONFIRMED))
    def test_connection_up(self):
        """A connection sends OPEN and enters OpenSent, or with DelayOpen waits in Active."""
        for event in (E.TCP_CR_ACKED, E.TCP_CONNECTION_CONFIRMED):
            self.assert_transition(_step(S.ACTIVE, event), SEND_OPEN, S.OPEN_SENT)
            self.assert_transition(
                _step(S.ACTIVE, event, Flags(delay_open=True)),
                (A.STOP_CONNECT_RETRY_TIMER, A.START_DELAY_OPEN_TIMER),
                S.ACTIVE,
            )

    @covers((S.ACTIVE, E.TCP_CONNECTION_FAILS))
    def test_connection_fails(self):
        """A failed connection in Active counts a retry and goes to Idle."""
        self.assert_damped_exit(
            S.ACTIVE,
            E.TCP_CONNECTION_FAILS,
            (
                A.RESTART_CONNECT_RETRY_TIMER,
                A.STOP_DELAY_OPEN_TIMER,
                A.RELEASE_RESOURCES,
                A.INCREMENT_CONNECT_RETRY_COUNTER,
            ),
        )


class OpenSentTests(TransitionAssertions, SynchronousTestCase):
    """RFC 4271 8.2.2, OpenSent state."""

    @covers((S.OPEN_SENT, E.BGP_OPEN))
    def test_open(self):
        """A valid OPEN is answered with KEEPALIVE and negotiated timers: OpenConfirm."""
        accept = (
            A.PROCESS_OPEN,
            A.STOP_DELAY_OPEN_TIMER,
            A.STOP_CONNECT_RETRY_TIMER,
            A.SEND_KEEPALIVE,
        )
        self.assert_transition(
            _step(S.OPEN_SENT, E.BGP_OPEN),
            accept + (A.START_KEEPALIVE_TIMER, A.START_HOLD_TIMER_NEGOTIATED),
            S.OPEN_CONFIRM,
        )
        # A zero HoldTime runs no timers, and the large OpenSent HoldTimer stops.
        self.assert_transition(
            _step(S.OPEN_SENT, E.BGP_OPEN, Flags(hold_time_zero=True)),
            accept + (A.STOP_HOLD_TIMER,),
            S.OPEN_CONFIRM,
        )

    @covers((S.OPEN_SENT, E.BGP_OPEN), (S.OPEN_SENT, E.OPEN_COLLISION_DUMP))
    def test_collision_dump(self):
        """The connection collision detection closes gets a Cease and goes to Idle."""
        cease = (A.SEND_NOTIFICATION_CEASE,) + CLOSE
        self.assert_damped_exit(S.OPEN_SENT, E.OPEN_COLLISION_DUMP, cease)
        self.assert_damped_exit(S.OPEN_SENT, E.BGP_OPEN, cease, Flags(collision_dump=True))

    @covers((S.OPEN_SENT, E.TCP_CONNECTION_FAILS))
    def test_connection_fails(self):
        """A failed connection in OpenSent goes back to Active to listen."""
        self.assert_transition(
            _step(S.OPEN_SENT, E.TCP_CONNECTION_FAILS, DAMP),
            (A.DROP_TCP_CONNECTION, A.STOP_HOLD_TIMER, A.RESTART_CONNECT_RETRY_TIMER),
            S.ACTIVE,
        )

    @covers((S.OPEN_SENT, E.NOTIF_MSG_VER_ERR))
    def test_version_error(self):
        """A version error closes without counting a retry or damping."""
        self.assert_transition(
            _step(S.OPEN_SENT, E.NOTIF_MSG_VER_ERR, DAMP),
            (A.STOP_CONNECT_RETRY_TIMER, A.RELEASE_RESOURCES, A.DROP_TCP_CONNECTION),
            S.IDLE,
        )


class OpenSentOrConfirmTests(TransitionAssertions, SynchronousTestCase):
    """Paragraphs section 8.2.2 repeats for OpenSent and OpenConfirm."""

    both = (S.OPEN_SENT, S.OPEN_CONFIRM)

    @covers(_pairs(both, [E.AUTOMATIC_STOP]))
    def test_automatic_stop(self):
        """AutomaticStop sends a Cease and counts a retry."""
        for state in self.both:
            self.assert_damped_exit(
                state, E.AUTOMATIC_STOP, (A.SEND_NOTIFICATION_CEASE,) + CLOSE
            )

    @covers(_pairs(both, [E.HOLD_TIMER_EXPIRES]))
    def test_hold_timer_expires(self):
        """The HoldTimer's expiry sends Hold Timer Expired and goes to Idle."""
        for state in self.both:
            self.assert_damped_exit(
                state, E.HOLD_TIMER_EXPIRES, (A.SEND_NOTIFICATION_HOLD_TIMER_EXPIRED,) + CLOSE
            )

    @covers(_pairs(both, [E.TCP_CONNECTION_VALID, E.TCP_CR_ACKED, E.TCP_CONNECTION_CONFIRMED]))
    def test_second_connection_tracked(self):
        """A second connection is tracked for collision detection; the state stays."""
        for state in self.both:
            for event in (E.TCP_CONNECTION_VALID, E.TCP_CR_ACKED, E.TCP_CONNECTION_CONFIRMED):
                self.assert_transition(_step(state, event), (A.TRACK_SECOND_CONNECTION,), state)

    @covers(_pairs(both, [E.TCP_CR_INVALID]))
    def test_invalid_connection_ignored(self):
        """An invalid connection request is ignored."""
        for state in self.both:
            self.assert_transition(_step(state, E.TCP_CR_INVALID), (), state)

    @covers(_pairs(both, [E.BGP_HEADER_ERR, E.BGP_OPEN_MSG_ERR]))
    def test_message_errors(self):
        """Header and OPEN errors send their NOTIFICATION and go to Idle."""
        for state in self.both:
            for event in (E.BGP_HEADER_ERR, E.BGP_OPEN_MSG_ERR):
                self.assert_damped_exit(state, event, (A.SEND_NOTIFICATION_FROM_ERROR,) + CLOSE)


class OpenConfirmTests(TransitionAssertions, SynchronousTestCase):
    """RFC 4271 8.2.2, OpenConfirm state."""

    @covers((S.OPEN_CONFIRM, E.KEEPALIVE_MSG))
    def test_keepalive(self):
        """The peer's KEEPALIVE establishes the session."""
        self.assert_transition(
            _step(S.OPEN_CONFIRM, E.KEEPALIVE_MSG),
            (A.RESTART_HOLD_TIMER, A.SESSION_ESTABLISHED),
            S.ESTABLISHED,
        )
        self.assert_transition(
            _step(S.OPEN_CONFIRM, E.KEEPALIVE_MSG, Flags(hold_time_zero=True)),
            (A.SESSION_ESTABLISHED,),
            S.ESTABLISHED,
        )

    @covers((S.OPEN_CONFIRM, E.KEEPALIVE_TIMER_EXPIRES))
    def test_keepalive_timer_expires(self):
        """The KeepaliveTimer sends a KEEPALIVE and restarts."""
        self.assert_transition(
            _step(S.OPEN_CONFIRM, E.KEEPALIVE_TIMER_EXPIRES),
            (A.SEND_KEEPALIVE, A.RESTART_KEEPALIVE_TIMER),
            S.OPEN_CONFIRM,
        )

    @covers((S.OPEN_CONFIRM, E.TCP_CONNECTION_FAILS), (S.OPEN_CONFIRM, E.NOTIF_MSG))
    def test_connection_lost(self):
        """A failed connection or a NOTIFICATION goes to Idle without a NOTIFICATION."""
        for event in (E.TCP_CONNECTION_FAILS, E.NOTIF_MSG):
            self.assert_damped_exit(S.OPEN_CONFIRM, event, CLOSE)

    @covers((S.OPEN_CONFIRM, E.NOTIF_MSG_VER_ERR))
    def test_version_error(self):
        """A version error closes without counting a retry or damping."""
        self.assert_transition(
            _step(S.OPEN_CONFIRM, E.NOTIF_MSG_VER_ERR, DAMP),
            (A.STOP_CONNECT_RETRY_TIMER, A.RELEASE_RESOURCES, A.DROP_TCP_CONNECTION),
            S.IDLE,
        )

    @covers((S.OPEN_CONFIRM, E.BGP_OPEN), (S.OPEN_CONFIRM, E.OPEN_COLLISION_DUMP))
    def test_collision(self):
        """A collision dump closes with a Cease; an OPEN on this connection is an FSM Error."""
        cease = (A.SEND_NOTIFICATION_CEASE,) + CLOSE
        self.assert_damped_exit(S.OPEN_CONFIRM, E.OPEN_COLLISION_DUMP, cease)
        self.assert_damped_exit(S.OPEN_CONFIRM, E.BGP_OPEN, cease, Flags(collision_dump=True))
        # RFC 6608 section 3: "Receive Unexpected Message in OpenConfirm State".
        self.assert_damped_exit(
            S.OPEN_CONFIRM, E.BGP_OPEN, (A.SEND_NOTIFICATION_FSM_ERROR,) + CLOSE
        )


class EstablishedTests(TransitionAssertions, SynchronousTestCase):
    """RFC 4271 8.2.2, Established state."""

    @covers((S.ESTABLISHED, E.HOLD_TIMER_EXPIRES))
    def test_hold_timer_expires(self):
        """The HoldTimer's expiry sends Hold Timer Expired, drops the routes, goes to Idle."""
        self.assert_damped_exit(
            S.ESTABLISHED,
            E.HOLD_TIMER_EXPIRES,
            (A.SEND_NOTIFICATION_HOLD_TIMER_EXPIRED,) + CLOSE_ESTABLISHED,
        )

    @covers((S.ESTABLISHED, E.AUTOMATIC_STOP))
    def test_automatic_stop(self):
        """AutomaticStop (e.g. a prefix limit) sends a Cease and drops the routes."""
        self.assert_damped_exit(
            S.ESTABLISHED, E.AUTOMATIC_STOP, (A.SEND_NOTIFICATION_CEASE,) + CLOSE_ESTABLISHED
        )

    @covers((S.ESTABLISHED, E.KEEPALIVE_TIMER_EXPIRES))
    def test_keepalive_timer_expires(self):
        """The KeepaliveTimer sends a KEEPALIVE and restarts unless HoldTime is zero."""
        e = E.KEEPALIVE_TIMER_EXPIRES
        self.assert_transition(
            _step(S.ESTABLISHED, e), (A.SEND_KEEPALIVE, A.RESTART_KEEPALIVE_TIMER), S.ESTABLISHED
        )
        self.assert_transition(
            _step(S.ESTABLISHED, e, Flags(hold_time_zero=True)),
            (A.SEND_KEEPALIVE,),
            S.ESTABLISHED,
        )

    @covers((S.ESTABLISHED, E.KEEPALIVE_MSG))
    def test_keepalive(self):
        """A KEEPALIVE restarts the HoldTimer unless HoldTime is zero."""
        self.assert_transition(
            _step(S.ESTABLISHED, E.KEEPALIVE_MSG), (A.RESTART_HOLD_TIMER,), S.ESTABLISHED
        )
        self.assert_transition(
            _step(S.ESTABLISHED, E.KEEPALIVE_MSG, Flags(hold_time_zero=True)), (), S.ESTABLISHED
        )

    @covers((S.ESTABLISHED, E.UPDATE_MSG))
    def test_update(self):
        """An UPDATE is processed and restarts the HoldTimer unless HoldTime is zero."""
        self.assert_transition(
            _step(S.ESTABLISHED, E.UPDATE_MSG),
            (A.PROCESS_UPDATE, A.RESTART_HOLD_TIMER),
            S.ESTABLISHED,
        )
        self.assert_transition(
            _step(S.ESTABLISHED, E.UPDATE_MSG, Flags(hold_time_zero=True)),
            (A.PROCESS_UPDATE,),
            S.ESTABLISHED,
        )

    @covers((S.ESTABLISHED, E.UPDATE_MSG_ERR), (S.ESTABLISHED, E.BGP_HEADER_ERR))
    def test_message_errors(self):
        """A bad UPDATE or header sends its own NOTIFICATION and drops the routes."""
        self.assert_damped_exit(
            S.ESTABLISHED,
            E.UPDATE_MSG_ERR,
            (A.SEND_NOTIFICATION_FROM_ERROR,) + CLOSE_ESTABLISHED,
        )
        self.assert_damped_exit(
            S.ESTABLISHED,
            E.BGP_HEADER_ERR,
            (
                A.SEND_NOTIFICATION_FROM_ERROR,
                A.SESSION_DOWN,
                A.STOP_CONNECT_RETRY_TIMER,
                A.RELEASE_RESOURCES,
                A.DROP_TCP_CONNECTION,
                A.INCREMENT_CONNECT_RETRY_COUNTER,
            ),
        )

    @covers(_pairs([S.ESTABLISHED], [E.TCP_CONNECTION_FAILS, E.NOTIF_MSG_VER_ERR, E.NOTIF_MSG]))
    def test_connection_lost(self):
        """A failed connection or a NOTIFICATION drops the routes without a NOTIFICATION."""
        for event in (E.TCP_CONNECTION_FAILS, E.NOTIF_MSG_VER_ERR, E.NOTIF_MSG):
            self.assert_damped_exit(S.ESTABLISHED, event, CLOSE_ESTABLISHED)

    @covers(
        _pairs(
            [S.ESTABLISHED],
            [E.TCP_CONNECTION_VALID, E.TCP_CR_ACKED, E.TCP_CONNECTION_CONFIRMED, E.TCP_CR_INVALID],
        )
    )
    def test_second_connection(self):
        """A second connection is tracked, an invalid one ignored; the session stays."""
        for event in (E.TCP_CONNECTION_VALID, E.TCP_CR_ACKED, E.TCP_CONNECTION_CONFIRMED):
            self.assert_transition(
                _step(S.ESTABLISHED, event), (A.TRACK_SECOND_CONNECTION,), S.ESTABLISHED
            )
        self.assert_transition(_step(S.ESTABLISHED, E.TCP_CR_INVALID), (), S.ESTABLISHED)

    @covers((S.ESTABLISHED, E.BGP_OPEN), (S.ESTABLISHED, E.OPEN_COLLISION_DUMP))
    def test_collision(self):
        """Collisions close an Established session only with CollisionDetectEstablishedState."""
        cease = (A.SEND_NOTIFICATION_CEASE,) + CLOSE_ESTABLISHED
        self.assert_damped_exit(S.ESTABLISHED, E.OPEN_COLLISION_DUMP, cease)
        both = Flags(collision_detect_established=True, collision_dump=True)
        self.assert_damped_exit(S.ESTABLISHED, E.BGP_OPEN, cease, both)
        # Otherwise the OPEN came on the session itself: RFC 4271 8.2.2 "any
        # other event", RFC 6608 "Receive Unexpected Message in Established".
        fsm_error = (
            A.SEND_NOTIFICATION_FSM_ERROR,
            A.SESSION_DOWN,
            A.STOP_CONNECT_RETRY_TIMER,
            A.RELEASE_RESOURCES,
            A.DROP_TCP_CONNECTION,
            A.INCREMENT_CONNECT_RETRY_COUNTER,
        )
        for flags in (
            NO_FLAGS,
            Flags(collision_dump=True),
            Flags(collision_detect_established=True),
        ):
            self.assert_damped_exit(S.ESTABLISHED, E.BGP_OPEN, fsm_error, flags)


class UnexpectedEventTests(TransitionAssertions, SynchronousTestCase):
    """The "any other event" paragraphs of section 8.2.2."""

    @covers(_pairs([S.CONNECT], OTHER_EVENTS[S.CONNECT]))
    def test_connect(self):
        """Connect closes without a NOTIFICATION, stopping both timers."""
        for event in OTHER_EVENTS[S.CONNECT]:
            self.assert_damped_exit(
                S.CONNECT,
                event,
                (A.STOP_CONNECT_RETRY_TIMER, A.STOP_DELAY_OPEN_TIMER) + CLOSE[1:],
            )

    @covers(_pairs([S.ACTIVE], OTHER_EVENTS[S.ACTIVE]))
    def test_active(self):
        """Active closes without a NOTIFICATION."""
        for event in OTHER_EVENTS[S.ACTIVE]:
            self.assert_damped_exit(S.ACTIVE, event, CLOSE)

    @covers(
        _pairs([S.OPEN_SENT], OTHER_EVENTS[S.OPEN_SENT]),
        _pairs([S.OPEN_CONFIRM], OTHER_EVENTS[S.OPEN_CONFIRM]),
        _pairs([S.ESTABLISHED], OTHER_EVENTS[S.ESTABLISHED]),
    )
    def test_fsm_error(self):
        """OpenSent, OpenConfirm and Established send an FSM Error with their subcode."""
        closing = {
            S.OPEN_SENT: (A.SEND_NOTIFICATION_FSM_ERROR,) + CLOSE,
            S.OPEN_CONFIRM: (A.SEND_NOTIFICATION_FSM_ERROR,) + CLOSE,
            S.ESTABLISHED: (
                A.SEND_NOTIFICATION_FSM_ERROR,
                A.SESSION_DOWN,
                A.STOP_CONNECT_RETRY_TIMER,
                A.RELEASE_RESOURCES,
                A.DROP_TCP_CONNECTION,
                A.INCREMENT_CONNECT_RETRY_COUNTER,
            ),
        }
        subcodes = {S.OPEN_SENT: 1, S.OPEN_CONFIRM: 2, S.ESTABLISHED: 3}
        for state, actions in closing.items():
            self.assertEqual(fsm_error_subcode(state), subcodes[state])
            for event in OTHER_EVENTS[state]:
                self.assert_damped_exit(state, event, actions)

    def test_fsm_error_only_where_the_rfc_says(self):
        """Only the "any other event" rows and an unexpected OPEN send an FSM Error."""
        expected = {
            (state, event) for state, events in OTHER_EVENTS.items() for event in events
        } - _pairs([S.CONNECT, S.ACTIVE], Event)
        # An OPEN on a connection that had its OPEN: RFC 6608 subcodes 2 and 3.
        expected |= {(S.OPEN_CONFIRM, E.BGP_OPEN), (S.ESTABLISHED, E.BGP_OPEN)}
        found = {
            pair
            for pair, rule in TABLE.items()
            for alternative in rule
            if A.SEND_NOTIFICATION_FSM_ERROR in alternative.transition.actions
        }
        self.assertEqual(found, expected)


class CoverageTests(SynchronousTestCase):
    """Every (State, Event) pair is checked by some test."""

    def test_every_pair_covered(self):
        """No pair of the 6 x 28 lacks a test that declares it with @covers."""
        missing = _pairs(State, Event) - _DECLARED
        self.assertEqual(
            sorted((state.name, event.name) for state, event in missing), []
        )

    def test_covers_checks_stepping(self):
        """A test that declares a pair it never steps fails."""

        class LazyTests(SynchronousTestCase):
            # A pair other tests declare too, so this cannot fake coverage.
            @covers((S.IDLE, E.MANUAL_START))
            def test_nothing(self):
                """Steps nothing."""

        result = TestResult()
        LazyTests("test_nothing").run(result)
        self.assertEqual(len(result.failures), 1)


class KeepaliveIntervalTests(SynchronousTestCase):
    """KeepaliveTime: a third of the hold time less the guard, jittered (RFC 4271 4.4, 10)."""

    def test_bounds(self):
        """Jitter 1.0 leaves the guard before hold/3, jitter 0.75 scales the same base."""
        self.assertAlmostEqual(fsm.keepalive_interval(9, 1.0), 3.0 - fsm.KEEPALIVE_GUARD)
        self.assertAlmostEqual(fsm.keepalive_interval(9, 0.75), 0.75 * (3.0 - fsm.KEEPALIVE_GUARD))
        self.assertAlmostEqual(fsm.keepalive_interval(90, 1.0), 30.0 - fsm.KEEPALIVE_GUARD)

    def test_short_hold_time(self):
        """With the shortest hold time (3 s) the guard is a quarter of the third, not 0.5 s."""
        self.assertAlmostEqual(fsm.keepalive_interval(3, 1.0), 0.75)
