"""The scaling plan, calendar and forecast of a pool over the API: bounded inputs, field errors, stable codes."""

from __future__ import annotations

import pytest

from desktops.models import Pool, ScalingException, ScalingPlan
from desktops.tests.factories import PoolFactory
from tests.fixtures import api_client


@pytest.fixture
def pool(alice, template) -> Pool:
    return PoolFactory(world=alice, template=template, name="Office", min_ready=1, max_size=8)


def scaling_url(pool: Pool) -> str:
    return f"/api/v1/pools/{pool.pk}/scaling/"


def test_it_answers_min_ready_until_a_plan_is_written_then_the_plan(alice, pool):
    client = api_client(alice.admin, alice.tenant)
    body = client.get(scaling_url(pool)).json()
    assert body["id"] == pool.pk and body["plan"] is None and body["target"]["warm"] == 1
    assert body["time_zone"] == "UTC"
    # A plan that asks 3 warm desktops all day, every day
    response = client.patch(
        scaling_url(pool),
        {"days": "1234567", "ramp_up_minimum": 3, "peak_minimum": 3, "ramp_down_minimum": 3, "off_peak_minimum": 3},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["plan"]["peak_minimum"] == 3 and body["plan"]["peak_start"] == "08:30:00"
    assert body["target"]["warm"] == 3 and body["target"]["planned"] == 3
    assert ScalingPlan.objects.get(pool=pool).days == "1234567"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"peak_start": "06:00"}, "invalid_plan", "peak_start"),
        ({"off_peak_start": "16:00"}, "invalid_plan", "off_peak_start"),
        ({"peak_minimum": 9}, "invalid_plan", "peak_minimum"),
        ({"peak_minimum": 101, "peak_unit": "percent"}, "invalid_plan", "peak_minimum"),
        ({"peak_minimum": 2**40}, "invalid", "peak_minimum"),
        ({"peak_minimum": -1}, "invalid", "peak_minimum"),
        ({"peak_start": "25:00"}, "invalid", "peak_start"),
        ({"lead_minutes": 0}, "invalid", "lead_minutes"),
        ({"lead_minutes": 100000}, "invalid", "lead_minutes"),
        ({"days": "189"}, "invalid", "days"),
        ({"days": "11"}, "invalid", "days"),
        ({"peak_unit": "dozens"}, "invalid", "peak_unit"),
        ({"notice_minutes": 121}, "invalid", "notice_minutes"),
        ({"notice_minutes": -1}, "invalid", "notice_minutes"),
        ({"notice_minutes": "soon"}, "invalid", "notice_minutes"),
        ({"defer_minutes": 2**40}, "invalid", "defer_minutes"),
    ],
)
def test_it_refuses_bad_plans_with_field_errors(alice, pool, body, code, field):
    response = api_client(alice.admin, alice.tenant).put(scaling_url(pool), body, format="json")
    assert response.status_code == 400
    answer = response.json()
    assert answer["code"] == code and field in answer["errors"], answer
    assert not ScalingPlan.objects.filter(pool=pool).exists()


def test_it_adds_lists_and_removes_calendar_exceptions(alice, pool):
    client = api_client(alice.admin, alice.tenant)
    holiday = {"pool": pool.pk, "kind": "closure", "name": "May Day", "first_day": "2027-05-01"}
    response = client.post("/api/v1/scaling-exceptions/", holiday, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["last_day"] == "2027-05-01"  # one day when no last day is given
    slot = {"pool": pool.pk, "kind": "slot", "weekday": 2, "start_time": "14:00", "end_time": "15:00", "minimum": 6}
    assert client.post("/api/v1/scaling-exceptions/", slot, format="json").status_code == 201
    listed = client.get(f"/api/v1/scaling-exceptions/?pool={pool.pk}").json()["results"]
    assert {row["kind"] for row in listed} == {"closure", "slot"}
    exception = ScalingException.objects.get(kind="closure")
    assert client.delete(f"/api/v1/scaling-exceptions/{exception.pk}/").status_code == 204
    assert ScalingException.objects.filter(pool=pool).count() == 1


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"kind": "slot", "weekday": 2, "start_time": "14:30", "end_time": "16:00"}, "invalid_exception", "start_time"),
        ({"kind": "slot", "weekday": 3, "start_time": "15:00", "end_time": "14:00"}, "invalid_exception", "end_time"),
        ({"kind": "slot", "weekday": 3}, "invalid_exception", "start_time"),
        ({"kind": "slot", "weekday": 8, "start_time": "14:00", "end_time": "15:00"}, "invalid", "weekday"),
        ({"kind": "closure"}, "invalid_exception", "first_day"),
        ({"kind": "closure", "first_day": "2027-05-02", "last_day": "2027-05-01"}, "invalid_exception", "last_day"),
        ({"kind": "closure", "first_day": "2027-13-01"}, "invalid", "first_day"),
        ({"kind": "closure", "first_day": "2027-05-01", "minimum": 50}, "invalid_exception", "minimum"),
        ({"kind": "holiday", "first_day": "2027-05-01"}, "invalid", "kind"),
    ],
)
def test_it_refuses_bad_or_overlapping_exceptions_with_field_errors(alice, pool, body, code, field):
    client = api_client(alice.admin, alice.tenant)
    slot = {"pool": pool.pk, "kind": "slot", "weekday": 2, "start_time": "14:00", "end_time": "15:00"}
    assert client.post("/api/v1/scaling-exceptions/", slot, format="json").status_code == 201
    response = client.post("/api/v1/scaling-exceptions/", {"pool": pool.pk, **body}, format="json")
    assert response.status_code == 400
    answer = response.json()
    assert answer["code"] == code and field in answer["errors"], answer
    assert ScalingException.objects.filter(pool=pool).count() == 1


def test_it_refuses_a_bad_pool_filter(alice, pool):
    response = api_client(alice.admin, alice.tenant).get("/api/v1/scaling-exceptions/?pool=x")
    assert response.status_code == 400 and response.json()["code"] == "invalid_pool"


def test_it_is_for_tenant_admins_only(alice, pool):
    member = api_client(alice.member, alice.tenant)
    assert member.get(scaling_url(pool)).status_code == 403
    assert member.patch(scaling_url(pool), {"peak_minimum": 1}, format="json").status_code == 403
    assert not ScalingPlan.objects.exists()


def test_it_forecasts_the_day_in_quarter_hours_and_last_week_by_hour(alice, pool):
    client = api_client(alice.admin, alice.tenant)
    client.patch(scaling_url(pool), {"prediction_enabled": True}, format="json")
    body = client.get(f"/api/v1/pools/{pool.pk}/forecast/").json()
    assert body["id"] == pool.pk and len(body["planned"]) == 96 and len(body["last_week"]) == 168
    first = body["planned"][0]
    assert first["at"] == "00:00:00" and first["phase"] == "off_peak" and first["predicted"] == 0
    peak = next(p for p in body["planned"] if p["at"] == "09:00:00")
    assert peak["planned"] in (5, 0)  # 5 on a weekday, 0 at the weekend (the test runs on any day)


def test_it_writes_the_ramp_down_stop_and_its_notice(alice, pool):
    client = api_client(alice.admin, alice.tenant)
    body = {"stop_in_use": True, "notice_minutes": 30, "defer_minutes": 10}
    response = client.patch(scaling_url(pool), body, format="json")
    assert response.status_code == 200, response.content
    plan = response.json()["plan"]
    assert (plan["stop_in_use"], plan["notice_minutes"], plan["defer_minutes"]) == (True, 30, 10)
    assert ScalingPlan.objects.get(pool=pool).notice_minutes == 30
