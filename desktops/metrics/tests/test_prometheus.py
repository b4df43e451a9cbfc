"""`/metrics`: Prometheus text that parses, with the newest figures, for operators and the scrape token only."""

from __future__ import annotations

import math
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from desktops.metrics.models import DesktopSample, HostSample
from desktops.tests.factories import DesktopFactory
from tests.factories import UserFactory
from tests.fixtures import login_client

pytestmark = pytest.mark.urls("desktops.metrics.urls")

TOKEN = "scrape-token-0123456789abcdef"

# The text exposition format 0.0.4, strictly: names, label sets, values, HELP/TYPE before samples.
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(rf"^(?P<name>{_NAME})(?:\{{(?P<labels>{_LABEL}(?:,{_LABEL})*)?,?\}})? (?P<value>\S+)(?: -?\d+)?$")
_HELP = re.compile(rf"^# HELP (?P<name>{_NAME}) .*$")
_TYPE = re.compile(rf"^# TYPE (?P<name>{_NAME}) (?P<kind>counter|gauge|histogram|summary|untyped)$")


def parse(text: str) -> dict[str, dict]:
    """{family: {"type": kind, "samples": {labels-tuple: value}}}; AssertionError on anything malformed."""
    assert text.endswith("\n"), "the exposition must end with a line feed"
    families: dict[str, dict] = {}
    seen_samples: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        if line.startswith("# HELP "):
            assert _HELP.match(line), (number, line)
            continue
        if line.startswith("# TYPE "):
            match = _TYPE.match(line)
            assert match, (number, line)
            name = match["name"]
            assert name not in families, f"TYPE of {name} given twice"
            assert name not in seen_samples, f"TYPE of {name} after its samples"
            families[name] = {"type": match["kind"], "samples": {}}
            continue
        assert not line.startswith("#"), (number, line)
        match = _SAMPLE.match(line)
        assert match, f"line {number} is not a sample: {line!r}"
        name = match["name"]
        assert name in families, f"{name} has no TYPE line before it"
        value = match["value"]
        assert value in ("NaN", "+Inf", "-Inf") or not math.isnan(float(value)), (number, line)
        labels = tuple(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match["labels"] or ""))
        assert len({k for k, _ in labels}) == len(labels), f"repeated label in line {number}"
        assert labels not in families[name]["samples"], f"duplicate sample in line {number}"
        families[name]["samples"][labels] = float(value)
        seen_samples.add(name)
    return families


@pytest.fixture
def collected(alice, host, template):
    """A host's newest collection with one desktop in it."""
    desk = DesktopFactory(world=alice, template=template, name='quote " desk', host=host)
    at = timezone.now() - timedelta(seconds=2)
    HostSample.objects.create(host=host, at=at, desktops=1, cpu_percent=6.25, cpu_cores=1.0, memory_used_mib=512)
    DesktopSample.objects.create(
        desktop=desk, tenant=alice.tenant, host=host, at=at, cpu_percent=50.0, memory_used_mib=512.0,
        memory_total_mib=2048.0, vcpus=2, cpu_time_ns=12_500_000_000, disk_read_bytes=4096, net_tx_bytes=10,
    )  # fmt: skip
    return desk


def test_it_serves_parseable_figures_to_operators(collected, host):
    staff = UserFactory(is_staff=True)
    response = login_client(staff).get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = parse(response.content.decode())
    desktop = (("desktop", str(collected.pk)), ("tenant", "alice"), ("host", host.name))
    assert families["quetzal_desktop_cpu_percent"]["samples"][desktop] == 50.0
    assert families["quetzal_desktop_cpu_seconds_total"]["type"] == "counter"
    assert families["quetzal_desktop_cpu_seconds_total"]["samples"][desktop] == 12.5
    assert families["quetzal_desktop_memory_used_bytes"]["samples"][desktop] == 512 * 1024 * 1024
    assert families["quetzal_desktop_disk_read_bytes_total"]["samples"][desktop] == 4096
    on_host = (("host", host.name),)
    assert families["quetzal_host_cpu_percent"]["samples"][on_host] == 6.25
    assert families["quetzal_host_vcpu_capacity"]["samples"][on_host] == host.vcpu_capacity
    assert families["quetzal_host_up"]["samples"][on_host] == 1
    assert families["quetzal_desktops"]["samples"][(("state", "running"),)] == 1


def test_it_leaves_out_hosts_whose_newest_sample_is_stale(collected):
    HostSample.objects.update(at=timezone.now() - timedelta(hours=1))
    DesktopSample.objects.update(at=timezone.now() - timedelta(hours=1))
    families = parse(login_client(UserFactory(is_staff=True)).get("/metrics").content.decode())
    # A stale figure would read as current in Prometheus; an absent one reads as "no data"
    assert families["quetzal_desktop_cpu_percent"]["samples"] == {}
    assert families["quetzal_host_cpu_percent"]["samples"] == {}


def test_it_refuses_anonymous_callers_and_people_who_are_not_operators(alice, collected):
    anonymous = Client().get("/metrics")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "not_authenticated"
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    owner = login_client(alice.owner, alice.tenant).get("/metrics")
    assert owner.status_code == 403 and owner.json()["code"] == "forbidden"


def test_it_lets_a_scraper_in_with_the_token_only(settings, collected):
    settings.METRICS_TOKEN = TOKEN
    assert Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    wrong = Client().get("/metrics", headers={"Authorization": "Bearer not-the-token-at-all"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_token"
    # Without a configured token, no token is valid
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401


def test_the_parser_rejects_malformed_exposition():
    # The check above is only worth something if it can fail
    with pytest.raises(AssertionError):
        parse('quetzal_x{a="1"} 1\n')  # no TYPE
    with pytest.raises(AssertionError):
        parse('# TYPE quetzal_x gauge\nquetzal_x{a="1} 1\n')  # unterminated label value
    with pytest.raises(AssertionError):
        parse("# TYPE quetzal_x gauge\nquetzal_x 1\nquetzal_x 2\n")  # duplicate series


def test_it_reports_a_bad_token_setting_at_startup_and_still_answers_scrapes(settings, collected):
    from django.core.checks import run_checks

    # Given a token too short to be a secret
    settings.METRICS_TOKEN = "short"
    # Then the system check names it
    assert [e.id for e in run_checks() if e.id.startswith("desktops.metrics")] == ["desktops.metrics.E006"]
    # And a scrape presenting it is refused with a code, never a server error
    response = Client().get("/metrics", headers={"Authorization": "Bearer short"})
    assert response.status_code == 401 and response.json()["code"] == "invalid_token"
    assert login_client(UserFactory(is_staff=True)).get("/metrics").status_code == 200
