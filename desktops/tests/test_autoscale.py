"""A pool's warm target from its scaling plan and prediction, through refill, with the plan's edits."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.core.cache import cache

from desktops.choices import DesktopState, OperationKind
from desktops.models import Desktop, Operation, Pool, ScalingException, ScalingPlan
from desktops.services import autoscale, pools
from desktops.tests.factories import DesktopFactory, PoolFactory
from quetzal.errors import FieldErrors
from tenants import events
from tenants.events import AuditAction
from tenants.models import AuditEvent
from tests.factories import MembershipFactory

# 2026-03-02 is a Monday; Paris is UTC+1 then.
MONDAY_UTC = datetime(2026, 3, 2, tzinfo=UTC)


def paris(hour: int, minute: int = 0, day: int = 0) -> datetime:
    """A Paris wall-clock time on the Monday (or `day` days later), as the UTC instant."""
    return MONDAY_UTC + timedelta(days=day, hours=hour - 1, minutes=minute)


@pytest.fixture
def pool(alice, template) -> Pool:
    alice.tenant.time_zone = "Europe/Paris"
    alice.tenant.save()
    return PoolFactory(world=alice, template=template, name="Office", min_ready=1, max_size=8)


@pytest.fixture
def plan(pool, alice) -> ScalingPlan:
    values = {
        "ramp_up_start": time(7),
        "ramp_up_minimum": 2,
        "peak_start": time(8, 30),
        "peak_minimum": 4,
        "ramp_down_start": time(16, 30),
        "ramp_down_minimum": 1,
        "off_peak_start": time(19),
        "off_peak_minimum": 0,
    }
    return autoscale.save_plan(pool=pool, actor=alice.admin, values=values)


def test_it_keeps_min_ready_without_a_plan_or_with_a_disabled_one(pool, alice):
    assert autoscale.warm_target(pool, now=paris(10)).warm == 1
    autoscale.save_plan(pool=pool, actor=alice.admin, values={"enabled": False, "peak_minimum": 6})
    assert autoscale.warm_target(pool, now=paris(10)).warm == 1


def test_it_targets_each_phase_in_the_tenant_time_zone(pool, plan):
    # 06:59 Paris is 05:59 UTC: still off-peak; 07:00 Paris ramps up
    assert autoscale.warm_target(pool, now=paris(6, 59)).warm == 0
    assert autoscale.warm_target(pool, now=paris(7)).warm == 2
    target = autoscale.warm_target(pool, now=paris(9))
    assert (target.warm, target.phase, target.planned) == (4, "peak", 4)
    assert autoscale.warm_target(pool, now=paris(17)).warm == 1
    # Saturday is off-peak all day
    assert autoscale.warm_target(pool, now=paris(10, day=5)).warm == 0


def test_it_never_targets_above_max_size(pool, plan, alice):
    autoscale.save_plan(pool=pool, actor=alice.admin, values={"peak_minimum": 100, "peak_unit": "percent"})
    for _ in range(20):
        MembershipFactory(tenant=alice.tenant)
    assert autoscale.warm_target(pool, now=paris(9)).warm == pool.max_size == 8


def test_it_resolves_a_percentage_of_the_tenant_people(pool, plan, alice):
    # alice has three people (owner, admin, member); 7 more make 10
    for _ in range(7):
        MembershipFactory(tenant=alice.tenant)
    autoscale.save_plan(pool=pool, actor=alice.admin, values={"peak_minimum": 50, "peak_unit": "percent"})
    assert autoscale.warm_target(pool, now=paris(9)).warm == 5


def test_it_applies_a_holiday_and_a_weekly_slot(pool, plan, alice):
    autoscale.add_exception(
        pool=pool, actor=alice.admin, values={"kind": "closure", "first_day": date(2026, 3, 2), "minimum": 1}
    )
    autoscale.add_exception(
        pool=pool,
        actor=alice.admin,
        values={"kind": "slot", "weekday": 2, "start_time": time(14), "end_time": time(15), "minimum": 7},
    )
    assert autoscale.warm_target(pool, now=paris(9)).warm == 1  # Monday is the holiday
    assert autoscale.warm_target(pool, now=paris(14, 30, day=1)).warm == 7  # Tuesday's class
    assert autoscale.warm_target(pool, now=paris(15, 0, day=1)).warm == 4


def test_it_refills_to_the_plan_target_at_the_moment_given(pool, plan, host, work):
    with work():
        assert pools.refill(pool, now=paris(6)) == 0
        assert pools.refill(pool, now=paris(7, 30)) == 2
        assert pools.refill(pool, now=paris(9)) == 2
    assert pool.ready_count() == 4


def test_it_releases_surplus_warm_desktops_at_ramp_down_only_when_asked(pool, plan, alice, host, work):
    with work():
        pools.refill(pool, now=paris(9))
    assert pool.ready_count() == 4
    # Without release_idle, ramp-down keeps what is warm
    with work():
        pools.refill(pool, now=paris(17))
    assert pool.ready_count() == 4
    autoscale.save_plan(pool=pool, actor=alice.admin, values={"release_idle": True})
    # At peak nothing is released even with it on
    with work():
        pools.refill(pool, now=paris(12))
    assert pool.ready_count() == 4
    with work():
        pools.refill(pool, now=paris(17))
    assert pool.ready_count() == 1
    deletes = Operation.objects.filter(desktop__pool=pool, kind=OperationKind.DELETE)
    assert deletes.count() == 3
    # An assigned desktop is never released
    claimed = Desktop.objects.filter(pool=pool, user__isnull=True, state=DesktopState.RUNNING).first()
    Desktop.objects.filter(pk=claimed.pk).update(user=alice.member)
    with work():
        pools.refill(pool, now=paris(22))
    assert Desktop.objects.get(pk=claimed.pk).state == DesktopState.RUNNING


def test_it_predicts_from_the_claim_history_and_never_below_the_plan(pool, plan, alice, template):
    # Given four Mondays with 12 claims between 09:00 and 09:15 Paris time
    cache.clear()
    desktop = DesktopFactory(tenant=alice.tenant, template=template, pool=pool, name="seed", state=DesktopState.DELETED)
    Desktop.objects.filter(pk=desktop.pk).update(created_at=paris(0, day=-35))
    for week in range(1, 5):
        for i in range(12):
            event = events.desktop_claimed(actor=alice.member, tenant=alice.tenant, desktop=desktop, pool=pool)
            AuditEvent.objects.filter(pk=event.pk).update(created_at=paris(9, i, day=-7 * week))
    autoscale.save_plan(pool=pool, actor=alice.admin, values={"prediction_enabled": True, "lead_minutes": 15})
    # Then at 08:45 the pool holds for the rush (Poisson 95 % of 12 is 18, bounded by max_size 8)
    target = autoscale.warm_target(pool, now=paris(8, 45))
    assert target.predicted == 18 and target.warm == 8
    # And at 11:00, with nothing expected, the plan's peak minimum holds
    target = autoscale.warm_target(pool, now=paris(11))
    assert target.predicted == 0 and target.warm == 4
    # And on a holiday the prediction says nobody comes: the closure's minimum
    autoscale.add_exception(
        pool=pool, actor=alice.admin, values={"kind": "closure", "first_day": date(2026, 3, 2), "minimum": 0}
    )
    assert autoscale.warm_target(pool, now=paris(8, 45)).warm == 0


def test_it_refuses_phases_out_of_order_as_field_errors(pool, plan, alice):
    with pytest.raises(FieldErrors) as caught:
        autoscale.save_plan(pool=pool, actor=alice.admin, values={"peak_start": time(6)})
    assert caught.value.code == "invalid_plan" and set(caught.value.errors) == {"peak_start"}
    with pytest.raises(FieldErrors) as caught:
        autoscale.save_plan(pool=pool, actor=alice.admin, values={"peak_minimum": 9})
    assert set(caught.value.errors) == {"peak_minimum"}
    assert ScalingPlan.objects.get(pool=pool).peak_start == time(8, 30)


def test_it_bounds_the_ramp_down_notice_as_field_errors(pool, plan, alice):
    # Given a service caller that skips the API's checks, minutes beyond two hours are a field error
    for values, field in (({"notice_minutes": 121}, "notice_minutes"), ({"defer_minutes": 999}, "defer_minutes")):
        with pytest.raises(FieldErrors) as refused:
            autoscale.save_plan(pool=pool, actor=alice.admin, values=values)
        assert refused.value.code == "invalid_plan"
        assert refused.value.errors == {field: "Whole minutes from 0 (none) to 120."}
    assert ScalingPlan.objects.get(pool=pool).notice_minutes == 15


def test_it_refuses_overlapping_exceptions(pool, plan, alice):
    slot = {"kind": "slot", "weekday": 2, "start_time": time(14), "end_time": time(15), "minimum": 3}
    autoscale.add_exception(pool=pool, actor=alice.admin, values=slot)
    with pytest.raises(FieldErrors) as caught:
        autoscale.add_exception(pool=pool, actor=alice.admin, values={**slot, "start_time": time(14, 30)})
    assert caught.value.code == "invalid_exception" and "start_time" in caught.value.errors
    with pytest.raises(FieldErrors) as caught:
        autoscale.add_exception(pool=pool, actor=alice.admin, values={"kind": "closure"})
    assert "first_day" in caught.value.errors
    assert ScalingException.objects.filter(pool=pool).count() == 1


def test_it_audits_plan_and_calendar_changes(pool, plan, alice):
    autoscale.add_exception(
        pool=pool, actor=alice.admin, values={"kind": "closure", "first_day": date(2026, 5, 1), "minimum": 0}
    )
    exception = ScalingException.objects.get(pool=pool)
    autoscale.delete_exception(exception=exception, actor=alice.admin)
    changes = AuditEvent.objects.filter(action=AuditAction.POOL_SCALING, tenant=alice.tenant)
    assert sorted(e.data["change"] for e in changes) == ["create", "delete", "update"]


def test_it_bounds_the_quota_ceiling_by_the_tenant_quota(pool, alice, host, work):
    alice.tenant.quota_desktops = 2
    alice.tenant.save()
    pool.refresh_from_db()
    assert autoscale.quota_ceiling(pool) == 2
    with work():
        pools.refill(pool)
    pool.refresh_from_db()
    assert autoscale.quota_ceiling(pool) == 2  # one warm desktop held, one more of room
