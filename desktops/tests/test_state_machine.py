"""The state machine against a table written out here, not read from the code: a wrong entry in the code fails."""

from __future__ import annotations

import itertools
from contextlib import contextmanager

import pytest

from desktops.choices import STOPPABLE_STATES, DesktopState, OperationKind
from desktops.models import Desktop, DesktopSnapshot, Operation
from desktops.services import execution
from desktops.services.requests import request_action, request_create
from desktops.signals import desktop_state_changed
from desktops.state import ACTIONS, can_request, can_transition, transition
from desktops.tests.factories import DesktopFactory
from quetzal.errors import Conflict, ServiceError

ALIVE = {"requested", "provisioning", "stopped", "starting", "running", "stopping", "suspended", "hibernated"}

# For each target state, the states a desktop may move to it from.
ALLOWED_SOURCES = {
    "requested": set(),
    "provisioning": {"requested", "stopped", "error"},
    "stopped": {"provisioning", "stopping", "starting", "error"},
    "starting": {"stopped", "hibernated", "provisioning", "error"},
    "running": {"starting", "suspended", "stopping", "error"},
    "stopping": {"running", "suspended"},
    "suspended": {"running"},
    "hibernated": {"stopping", "starting"},
    "deleting": ALIVE | {"error"},
    "deleted": {"deleting"},
    "error": ALIVE | {"deleting"},
}

# For each action: the states it may start from, the state it passes through, the state it ends in, and
# whether a request may queue it (create has its own service; restore is only ever queued as a start).
ACTION_ROWS = {
    "create": ({"requested"}, "provisioning", "stopped", False),
    "rebuild": ({"stopped", "error"}, "provisioning", "stopped", True),
    "start": ({"stopped", "hibernated", "error"}, "starting", "running", True),
    "restore": ({"hibernated"}, "starting", "running", False),
    "stop": ({"running", "suspended"}, "stopping", "stopped", True),
    "hibernate": ({"running"}, "stopping", "hibernated", True),
    "suspend": ({"running"}, None, "suspended", True),
    "resume": ({"suspended"}, None, "running", True),
    "reboot": ({"running"}, None, None, True),
    "snapshot": ({"stopped", "running"}, None, None, True),
    # Queued only by desktops.services.resize (it carries a checked size), never by request_action.
    "resize": ({"stopped", "running"}, None, None, False),
    "revert": ({"stopped", "running"}, None, None, True),
    "delete_snapshot": ({"stopped", "running", "hibernated"}, None, None, True),
    "delete": (ALIVE | {"error"}, "deleting", "deleted", True),
    # Operators move running desktops between hosts (desktops.services.moves); people cannot request it.
    "migrate": ({"running"}, None, None, False),
}

PAIRS = [(source, target) for source in DesktopState.values for target in DesktopState.values if source != target]


def _desktop(world, template, state: str) -> Desktop:
    return DesktopFactory(world=world, template=template, name="d", vcpus=1, memory_mib=512, state=state)


@contextmanager
def _states_of(desktop_id: int | None):
    """Collect the states a desktop (None: any desktop) is moved to while the block runs."""
    seen: list[str] = []

    def record(sender, *, desktop_id: int, state: str, **kwargs) -> None:
        if wanted in (None, desktop_id):
            seen.append(str(state))

    wanted = desktop_id
    desktop_state_changed.connect(record, dispatch_uid="test_state_machine")
    try:
        yield seen
    finally:
        desktop_state_changed.disconnect(dispatch_uid="test_state_machine")


def _moves(kind: str) -> list[str]:
    """The states an action's worker moves the desktop to, by the written-out row."""
    _, through, target, _ = ACTION_ROWS[kind]
    return [state for state in (through, target) if state is not None]


def test_it_writes_out_every_state_and_action():
    assert set(ALLOWED_SOURCES) == set(DesktopState.values)
    assert set(ACTION_ROWS) == set(OperationKind.values) == set(ACTIONS) == set(execution.HANDLERS)


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_it_allows_exactly_the_documented_transitions(alice, template, source, target):
    # Given a desktop in `source`
    desktop = DesktopFactory(world=alice, template=template, state=source)
    # When something tries to move it to `target`
    won = transition(desktop, target)
    # Then it moves if and only if the written-out table allows it, and the row agrees
    assert won == (source in ALLOWED_SOURCES[target])
    assert Desktop.objects.get(pk=desktop.pk).state == (target if won else source)


@pytest.mark.parametrize("kind", OperationKind.values)
def test_it_keeps_each_actions_row(kind):
    sources, through, target, requestable = ACTION_ROWS[kind]
    action = ACTIONS[kind]
    assert (set(action.sources), action.through, action.target, action.requestable) == (
        sources,
        through,
        target,
        requestable,
    )
    for state in DesktopState.values:
        assert can_request(kind, state) == (requestable and state in sources), state


def test_it_calls_running_or_suspended_stoppable():
    assert set(STOPPABLE_STATES) == {"running", "suspended"} == ACTION_ROWS["stop"][0]


@pytest.mark.parametrize("kind", OperationKind.values)
def test_it_queues_a_request_only_from_the_states_its_row_allows(alice, template, kind):
    sources, _, _, requestable = ACTION_ROWS[kind]
    for state in DesktopState.values:
        # Given a desktop in each state (with a snapshot for the actions that name one)
        desktop = _desktop(alice, template, state)
        DesktopSnapshot.objects.create(desktop=desktop, name="kept")
        params = {"snapshot": "new" if kind == OperationKind.SNAPSHOT else "kept"}
        # When the action is requested
        try:
            operation = request_action(desktop=desktop, kind=kind, actor=alice.member, params=params)
        except ServiceError as refused:
            # Then it is refused exactly where the row says, with a stable code
            assert not (requestable and state in sources), (state, refused.code)
            assert refused.code == ("invalid_state" if requestable else "invalid_action")
        else:
            assert requestable and state in sources, state
            assert operation.kind == kind
        desktop.delete()  # so running ones do not count against the next request's limits


def test_it_moves_a_desktop_through_each_rows_states_on_the_worker(alice, host, template, work):
    # Given a desktop created without starting it: it passed through the create row's states
    with _states_of(None) as seen, work():
        desktop, _ = request_create(tenant=alice.tenant, user=alice.member, template=template, start=False)
    assert seen == _moves("create")
    walk = ["start", "suspend", "resume", "reboot", "snapshot", "hibernate", "restore", "stop", "rebuild", "delete"]
    for kind in walk:
        before = Desktop.objects.get(pk=desktop.pk).state
        assert before in ACTION_ROWS[kind][0], (kind, before)
        # When the worker carries the action out
        with _states_of(desktop.pk) as seen, work():
            if ACTION_ROWS[kind][3]:
                params = {"snapshot": "s1"} if kind == OperationKind.SNAPSHOT else None
                request_action(desktop=desktop, kind=kind, actor=alice.member, params=params)
            else:
                operation = Operation.objects.create(tenant=alice.tenant, desktop=desktop, kind=kind)
                execution.run(operation.pk)
        # Then the desktop passed through exactly the row's states, and the operation succeeded
        assert seen == _moves(kind), kind
        assert Operation.objects.filter(desktop=desktop).order_by("-pk").first().status == "succeeded", kind


def test_it_lets_only_one_of_two_racing_transitions_win(alice, template):
    desktop = DesktopFactory(world=alice, template=template)
    stale_copy = Desktop.objects.get(pk=desktop.pk)
    assert transition(desktop, DesktopState.STOPPING)
    # The second caller read "running" too, but the guarded UPDATE sees "stopping" now.
    assert not transition(stale_copy, DesktopState.SUSPENDED)
    assert Desktop.objects.get(pk=desktop.pk).state == DesktopState.STOPPING


def test_it_documents_the_lifecycle_path():
    path = ["requested", "provisioning", "stopped", "starting", "running", "stopping", "stopped", "deleting", "deleted"]
    assert all(can_transition(a, b) for a, b in itertools.pairwise(path))
    assert not can_transition("deleted", "running")


def test_it_runs_one_operation_at_a_time(alice, template):
    desktop = DesktopFactory(world=alice, template=template)
    first = request_action(desktop=desktop, kind=OperationKind.REBOOT, actor=alice.member)
    with pytest.raises(Conflict) as refused:
        request_action(desktop=desktop, kind=OperationKind.STOP, actor=alice.member)
    assert refused.value.code == "operation_in_progress"
    assert list(Operation.objects.filter(desktop=desktop)) == [first]
