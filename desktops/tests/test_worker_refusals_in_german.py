"""The worker's refusals (StepFailed) are whole sentences in the reader's language, the state in its words too."""

from __future__ import annotations

import pytest
from django.utils import translation

from desktops.choices import DesktopState, OperationKind
from desktops.services.execution import StepFailed, do_migrate, do_stop
from desktops.tests.factories import DesktopFactory, OperationFactory


def _refusal(step, kind: str, language: str, *, world, template) -> StepFailed:
    """What the worker answers when `step` is run on a stopped desktop, read in `language`."""
    desktop = DesktopFactory(world=world, template=template, state=DesktopState.STOPPED)
    operation = OperationFactory(desktop=desktop, kind=kind)
    with translation.override(language), pytest.raises(StepFailed) as refused:
        step(operation)
    return refused.value


def test_it_refuses_to_stop_a_stopped_desktop_in_german(alice, template):
    german = _refusal(do_stop, OperationKind.STOP, "de", world=alice, template=template)
    assert german.code == "invalid_state"
    assert german.detail == "Ein Desktop kann in diesem Zustand nicht gestoppt werden (gestoppt)."
    english = _refusal(do_stop, OperationKind.STOP, "en", world=alice, template=template)
    assert english.detail == "Cannot stop a desktop that is stopped."


def test_it_refuses_to_move_a_desktop_that_is_not_running_in_german(alice, template):
    german = _refusal(do_migrate, OperationKind.MIGRATE, "de", world=alice, template=template)
    assert (german.code, german.detail) == (
        "invalid_state",
        "Nur ein laufender Desktop kann umziehen (dieser: gestoppt).",
    )
