"""The state machine: every allowed and forbidden transition, and one operation at a time."""

from __future__ import annotations

import itertools

import pytest

from desktops.choices import DesktopState, OperationKind
from desktops.models import Desktop, Operation
from desktops.services.requests import request_action
from desktops.state import ALLOWED_SOURCES, can_transition, transition
from desktops.tests.factories import DesktopFactory
from quetzal.errors import Conflict

PAIRS = [(source, target) for source in DesktopState.values for target in DesktopState.values if source != target]


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_it_allows_exactly_the_documented_transitions(alice, template, source, target):
    # Given a desktop in `source`
    desktop = DesktopFactory(world=alice, template=template, state=source)
    # When something tries to move it to `target`
    won = transition(desktop, target)
    # Then it moves if and only if the table allows it, and the row agrees
    assert won == (source in ALLOWED_SOURCES[target])
    assert Desktop.objects.get(pk=desktop.pk).state == (target if won else source)


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
