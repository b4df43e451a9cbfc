"""What one transition writes besides the state, and how `sources` and the action rows guard it."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.utils import timezone

from desktops import state
from desktops.choices import DesktopState, OperationKind
from desktops.models import Desktop
from desktops.signals import desktop_state_changed
from desktops.state import begin_action, can_request, can_transition, finish_action, transition
from desktops.tests.factories import DesktopFactory
from desktops.tests.test_state_machine import ALLOWED_SOURCES as WRITTEN_SOURCES
from hosts.tests.factories import HostFactory

EARLIER = timezone.now() - timedelta(hours=3)

# For each action: whether it passes through a state of its own, and whether it ends in one.
HAS_THROUGH = {"create", "rebuild", "start", "restore", "stop", "hibernate", "delete"}
HAS_TARGET = HAS_THROUGH | {"suspend", "resume"}


@pytest.fixture
def desk(alice, template) -> Desktop:
    return DesktopFactory(
        world=alice, template=template, running_since=EARLIER, state_changed_at=EARLIER, status_reason="before"
    )


@contextmanager
def _signals():
    seen: list[dict] = []

    def record(sender, **kwargs) -> None:
        seen.append({"sender": sender, **{k: v for k, v in kwargs.items() if k != "signal"}})

    desktop_state_changed.connect(record, dispatch_uid="test_state_transitions")
    try:
        yield seen
    finally:
        desktop_state_changed.disconnect(dispatch_uid="test_state_transitions")


def _row(desktop: Desktop) -> Desktop:
    return Desktop.objects.get(pk=desktop.pk)


def test_it_narrows_the_allowed_sources_with_sources_and_never_widens_them(desk):
    # running → stopping is allowed, but not when the caller only accepts a suspended desktop
    assert not transition(desk, DesktopState.STOPPING, sources=[DesktopState.SUSPENDED])
    # running → stopped is never allowed, even when the caller names running
    assert not transition(desk, DesktopState.STOPPED, sources=[DesktopState.RUNNING])
    # an empty list accepts nothing
    assert not transition(desk, DesktopState.STOPPING, sources=[])
    assert _row(desk).state == DesktopState.RUNNING
    assert transition(desk, DesktopState.STOPPING, sources=(DesktopState.RUNNING, DesktopState.SUSPENDED))
    assert _row(desk).state == DesktopState.STOPPING


def test_it_stamps_the_change_keeps_the_reason_short_and_tells_listeners(desk):
    # When a running desktop fails with a long reason
    with _signals() as seen:
        assert transition(desk, DesktopState.ERROR, reason="x" * 400)
    row = _row(desk)
    # Then the row says when, and why in at most 300 characters; it no longer runs
    assert row.state == DesktopState.ERROR and row.state_changed_at > EARLIER
    assert row.status_reason == "x" * 300 and row.running_since is None
    # And the caller's copy says the same
    assert (desk.state, desk.state_changed_at, desk.status_reason) == (
        row.state,
        row.state_changed_at,
        row.status_reason,
    )
    # And listeners heard it once, with the same moment
    assert seen == [{"sender": Desktop, "desktop_id": desk.pk, "state": DesktopState.ERROR, "at": row.state_changed_at}]


def test_it_keeps_the_reason_when_none_is_given_and_writes_extra_fields(desk, template):
    assert transition(desk, DesktopState.STOPPING, consoles_open=3)
    row = _row(desk)
    assert row.status_reason == "before" and row.consoles_open == 3 and desk.consoles_open == 3


def test_it_starts_the_running_clock_on_running_keeps_it_on_suspend_and_stops_it_otherwise(alice, template):
    starting = DesktopFactory(world=alice, template=template, state=DesktopState.STARTING, running_since=None)
    assert transition(starting, DesktopState.RUNNING)
    since = _row(starting).running_since
    assert since is not None and since == _row(starting).state_changed_at
    assert transition(starting, DesktopState.SUSPENDED)
    assert _row(starting).running_since == since
    assert transition(starting, DesktopState.STOPPING)
    assert _row(starting).running_since is None


def test_it_lets_the_caller_say_since_when_it_runs(alice, template):
    starting = DesktopFactory(world=alice, template=template, state=DesktopState.STARTING, running_since=None)
    assert transition(starting, DesktopState.RUNNING, running_since=EARLIER)
    assert _row(starting).running_since == EARLIER


def test_it_moves_a_desktop_named_by_id_and_tells_listeners(desk):
    with _signals() as seen:
        assert transition(desk.pk, DesktopState.STOPPING)
    assert _row(desk).state == DesktopState.STOPPING
    assert [(s["desktop_id"], s["state"]) for s in seen] == [(desk.pk, DesktopState.STOPPING)]


def test_it_moves_only_the_desktop_it_names(alice, bob, template, desk):
    # Given other running desktops, of the same person and of another tenant
    mine = DesktopFactory(world=alice, template=template, running_since=EARLIER)
    theirs = DesktopFactory(world=bob, template=template, running_since=EARLIER)
    # When one desktop stops
    assert transition(desk, DesktopState.STOPPING)
    # Then only that one moved
    assert [_row(d).state for d in (desk, mine, theirs)] == [
        DesktopState.STOPPING,
        DesktopState.RUNNING,
        DesktopState.RUNNING,
    ]


def test_it_leaves_everything_as_it_was_when_it_loses(desk):
    with _signals() as seen:
        assert not transition(desk, DesktopState.STOPPED, reason="lost")
    assert seen == []
    row = _row(desk)
    assert (row.state, row.status_reason, row.running_since, row.state_changed_at) == (
        DesktopState.RUNNING,
        "before",
        EARLIER,
        EARLIER,
    )
    assert (desk.state, desk.status_reason) == (DesktopState.RUNNING, "before")


@pytest.mark.parametrize("kind", OperationKind.values)
def test_it_begins_only_actions_that_pass_through_a_state(alice, template, kind):
    desktop = DesktopFactory(world=alice, template=template, state=DesktopState.STOPPED)
    if kind not in HAS_THROUGH:
        with pytest.raises(ValueError, match="passes through no state of its own"):
            begin_action(desktop, kind)
        return
    # From a state outside the row it does not move; stopped is a source of rebuild, start and delete only
    won = begin_action(desktop, kind)
    assert won == (kind in {"rebuild", "start", "delete"})


@pytest.mark.parametrize("kind", OperationKind.values)
def test_it_finishes_only_actions_that_end_in_a_state(alice, template, kind):
    desktop = DesktopFactory(world=alice, template=template, state=DesktopState.RUNNING)
    if kind not in HAS_TARGET:
        with pytest.raises(ValueError, match="leaves the state as it is"):
            finish_action(desktop, kind)
        return
    # A running desktop is in the passing state of none of them; it is a starting state of suspend only
    assert finish_action(desktop, kind, reason="done") == (kind == "suspend")


def test_it_finishes_from_the_passing_state_not_the_starting_states(alice, template):
    stopping = DesktopFactory(world=alice, template=template, state=DesktopState.STOPPING)
    assert finish_action(stopping, OperationKind.HIBERNATE, reason="saved")
    assert (_row(stopping).state, _row(stopping).status_reason) == (DesktopState.HIBERNATED, "saved")
    suspended = DesktopFactory(world=alice, template=template, state=DesktopState.SUSPENDED)
    assert finish_action(suspended, OperationKind.RESUME)
    assert _row(suspended).state == DesktopState.RUNNING


def test_it_knows_no_moves_to_unknown_states_and_no_unknown_actions():
    assert not can_transition("running", "exploded")
    assert not can_request("explode", "running")


def test_it_derives_the_allowed_moves_from_the_rows_as_written_out():
    # The guard table is computed once, at import; computing it again from the rows gives the literal table
    assert state._allowed_sources() == {target: frozenset(sources) for target, sources in WRITTEN_SOURCES.items()}


@pytest.mark.parametrize(
    ("kind", "state"),
    [
        (OperationKind.START, DesktopState.ERROR),  # error → running is a repair move, not the start row's end
        (OperationKind.REBUILD, DesktopState.ERROR),  # error → stopped likewise
        (OperationKind.HIBERNATE, DesktopState.STARTING),  # starting → hibernated is reconcile's, not hibernate's
    ],
)
def test_it_finishes_an_action_only_from_its_own_passing_state(alice, template, kind, state):
    desktop = DesktopFactory(world=alice, template=template, state=state)
    assert not finish_action(desktop, kind)
    assert _row(desktop).state == state


def test_it_writes_the_fields_a_finishing_action_gives(alice, template):
    stopping = DesktopFactory(world=alice, template=template, state=DesktopState.STOPPING, host=HostFactory())
    assert finish_action(stopping, OperationKind.STOP, reason="stopped by you", host=None)
    row = _row(stopping)
    assert (row.state, row.status_reason, row.host_id) == (DesktopState.STOPPED, "stopped by you", None)
