"""The pool's scaling page in the admin console: the plan form, the calendar, the day chart, last week's demand."""

from __future__ import annotations

import re

import pytest

from desktops.models import Pool, ScalingException, ScalingPlan
from desktops.tests.factories import PoolFactory
from tests.fixtures import login_client


@pytest.fixture
def pool(alice, template) -> Pool:
    return PoolFactory(world=alice, template=template, name="Office", min_ready=1, max_size=8)


def plan_form(**changes) -> dict:
    values = {
        "enabled": "on",
        "days": ["1", "2", "3", "4", "5", "6", "7"],
        "ramp_up_start": "07:00",
        "ramp_up_minimum": "2",
        "ramp_up_unit": "desktops",
        "peak_start": "08:30",
        "peak_minimum": "6",
        "peak_unit": "desktops",
        "ramp_down_start": "16:30",
        "ramp_down_minimum": "1",
        "ramp_down_unit": "desktops",
        "off_peak_start": "19:00",
        "off_peak_minimum": "0",
        "off_peak_unit": "desktops",
        "lead_minutes": "10",
        "notice_minutes": "15",
        "defer_minutes": "0",
    }
    values.update(changes)
    return {key: value for key, value in values.items() if value is not None}


def bars(html: str) -> list[float]:
    """The heights of the day chart's quarter-hour bars."""
    chart = html.split('data-testid="day-chart"')[1].split("</svg>")[0]
    return [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', chart)]


def test_it_shows_min_ready_until_a_plan_is_saved_then_charts_the_plan(alice, pool):
    client = login_client(alice.admin, alice.tenant)
    page = client.get(f"/manage/pools/{pool.pk}/scaling/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "No plan yet" in html and 'data-testid="plan-form"' in html
    assert len(bars(html)) == 96
    response = client.post(f"/manage/pools/{pool.pk}/scaling/", plan_form())
    assert response.status_code == 302
    plan = ScalingPlan.objects.get(pool=pool)
    assert plan.days == "1234567" and plan.peak_minimum == 6
    html = client.get(f"/manage/pools/{pool.pk}/scaling/").content.decode()
    heights = bars(html)
    # 00:00 off-peak holds none; 09:00 (the 37th quarter hour) holds the peak's six of a top of eight
    assert heights[0] == 0 and heights[36] == pytest.approx(160 * 6 / 8)
    assert "No plan yet" not in html


def test_it_puts_bad_times_and_numbers_on_their_fields(alice, pool):
    client = login_client(alice.admin, alice.tenant)
    response = client.post(f"/manage/pools/{pool.pk}/scaling/", plan_form(peak_start="06:00"))
    assert response.status_code == 400
    assert response.context["form"].errors["peak_start"] == ["Must be later than the ramp-up start."]
    response = client.post(f"/manage/pools/{pool.pk}/scaling/", plan_form(peak_minimum="120", peak_unit="percent"))
    assert response.context["form"].errors["peak_minimum"] == ["A percentage is at most 100."]
    response = client.post(f"/manage/pools/{pool.pk}/scaling/", plan_form(peak_minimum="99999999999"))
    assert response.status_code == 400 and "peak_minimum" in response.context["form"].errors
    response = client.post(f"/manage/pools/{pool.pk}/scaling/", plan_form(days=None))
    assert "days" in response.context["form"].errors
    assert not ScalingPlan.objects.exists()


def test_it_edits_the_ramp_down_stop_and_bounds_its_notice(alice, pool):
    client = login_client(alice.admin, alice.tenant)
    html = client.get(f"/manage/pools/{pool.pk}/scaling/").content.decode()
    assert 'name="notice_minutes"' in html and 'name="defer_minutes"' in html and 'name="stop_in_use"' in html
    response = client.post(f"/manage/pools/{pool.pk}/scaling/", plan_form(notice_minutes="121"))
    assert response.status_code == 400 and "notice_minutes" in response.context["form"].errors
    response = client.post(f"/manage/pools/{pool.pk}/scaling/", plan_form(defer_minutes="-5"))
    assert response.status_code == 400 and "defer_minutes" in response.context["form"].errors
    assert not ScalingPlan.objects.exists()
    form = plan_form(stop_in_use="on", notice_minutes="30", defer_minutes="10")
    assert client.post(f"/manage/pools/{pool.pk}/scaling/", form).status_code == 302
    plan = ScalingPlan.objects.get(pool=pool)
    assert (plan.stop_in_use, plan.notice_minutes, plan.defer_minutes) == (True, 30, 10)


def test_it_adds_and_removes_calendar_exceptions(alice, pool):
    client = login_client(alice.admin, alice.tenant)
    url = f"/manage/pools/{pool.pk}/scaling/exceptions/"
    slot = {"kind": "slot", "name": "Class", "weekday": "2", "start_time": "14:00", "end_time": "15:00"}
    response = client.post(url, {**slot, "minimum": "5", "unit": "desktops"})
    assert response.status_code == 302
    overlapping = client.post(
        url, {**slot, "start_time": "14:30", "end_time": "16:00", "minimum": "1", "unit": "desktops"}
    )
    assert overlapping.status_code == 400
    assert "Overlaps" in overlapping.context["exception_form"].errors["start_time"][0]
    closure = {"kind": "closure", "name": "May Day", "first_day": "2027-05-01", "minimum": "0", "unit": "desktops"}
    assert client.post(url, closure).status_code == 302
    html = client.get(f"/manage/pools/{pool.pk}/scaling/").content.decode()
    assert "May Day" in html and "Class" in html and "14:00" in html
    exception = ScalingException.objects.get(name="May Day")
    assert client.post(f"/manage/scaling-exceptions/{exception.pk}/delete/").status_code == 302
    assert list(ScalingException.objects.values_list("name", flat=True)) == ["Class"]


def test_it_shows_predicted_against_actual_demand_when_prediction_is_on(alice, pool):
    client = login_client(alice.admin, alice.tenant)
    client.post(f"/manage/pools/{pool.pk}/scaling/", plan_form(prediction_enabled="on"))
    html = client.get(f"/manage/pools/{pool.pk}/scaling/").content.decode()
    assert 'data-testid="week-chart"' in html and "Predicted vs actual" in html


def test_it_links_the_scaling_page_from_the_pool(alice, pool):
    html = login_client(alice.admin, alice.tenant).get(f"/manage/pools/{pool.pk}/").content.decode()
    assert f"/manage/pools/{pool.pk}/scaling/" in html
