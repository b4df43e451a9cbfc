"""Heartbeats: facts refreshed, silent hosts marked down after 60 s, and back up by themselves."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from hosts import scheduling, tasks
from hosts.choices import HostState
from hosts.errors import NoCapacity
from hosts.models import Host, HostDevice
from hosts.scheduling import PlacementRequest
from hosts.services import health
from hosts.services.hosts import register_host
from hosts.tests.factories import HostFactory
from hosts.tests.libvirt_hosts import DEAD_URI, LARGE_URI, SMALL_URI
from quetzal.errors import NotFound
from tenants.models import AuditEvent

pytestmark = pytest.mark.django_db


def later(seconds: float):
    """Pretend the clock moved forward (the services read django.utils.timezone.now)."""
    return mock.patch("django.utils.timezone.now", return_value=timezone.now() + timedelta(seconds=seconds))


def test_it_refreshes_what_the_host_reports():
    # given a registered host whose stored facts went stale
    host = register_host(SMALL_URI, name="small")
    Host.objects.filter(pk=host.pk).update(cpus=1, memory_mib=1, libvirt_version="", last_error="old")
    before = Host.objects.get(pk=host.pk).last_heartbeat_at
    # when a heartbeat runs
    with later(5):
        host = health.heartbeat(host_id=host.pk)
    # then the facts, the version and the time are current and the old error is gone
    assert (host.cpus, host.memory_mib) == (2, 4096)
    assert host.libvirt_version
    assert host.last_heartbeat_at > before
    assert host.state == HostState.UP and host.last_error == ""


def test_it_marks_a_silent_host_down_after_60_seconds_and_up_when_it_answers_again():
    # given an up host that then stops answering
    host = register_host(SMALL_URI, name="small")
    Host.objects.filter(pk=host.pk).update(uri=DEAD_URI)
    # when its heartbeat fails 30 s later, then the error is kept but it is still up
    with later(30):
        host = health.heartbeat(host_id=host.pk)
        assert health.mark_stale_hosts_down() == []
    assert host.state == HostState.UP
    assert DEAD_URI in host.last_error and host.last_error_at is not None
    # when 61 s have passed without an answer
    with later(61):
        marked = health.mark_stale_hosts_down()
    # then it is down, and the scheduler no longer uses it
    host.refresh_from_db()
    assert marked == [host.pk] and host.state == HostState.DOWN
    assert AuditEvent.objects.filter(action="host.down", target_id=str(host.pk)).exists()
    with later(62), pytest.raises(NoCapacity, match="no enabled host is up"):
        scheduling.place(PlacementRequest(desktop_id=1, vcpus=1, memory_mib=256))
    # when the host answers again
    Host.objects.filter(pk=host.pk).update(uri=SMALL_URI)
    with later(90):
        host = health.heartbeat(host_id=host.pk)
        placement = scheduling.place(PlacementRequest(desktop_id=1, vcpus=1, memory_mib=256))
    # then it is up by itself, without an operator, and takes desktops again
    assert host.state == HostState.UP and host.last_error == ""
    assert placement.host_id == host.pk
    assert AuditEvent.objects.filter(action="host.up", target_id=str(host.pk)).exists()


def test_it_marks_a_host_down_from_its_own_failed_heartbeat_once_stale():
    # given a host last heard from 70 s ago that does not answer now
    host = HostFactory(uri=DEAD_URI, last_heartbeat_at=timezone.now() - timedelta(seconds=70))
    # when its heartbeat fails, then it is down at once
    assert health.heartbeat(host_id=host.pk).state == HostState.DOWN


def test_it_keeps_hosts_heard_from_within_the_limit(settings):
    # given a limit of 60 s and hosts heard from 59 s and 61 s ago, and one never heard from
    settings.HOST_DOWN_AFTER_S = 60
    recent = HostFactory(last_heartbeat_at=timezone.now() - timedelta(seconds=59))
    silent = HostFactory(last_heartbeat_at=timezone.now() - timedelta(seconds=61))
    # when stale hosts are marked
    marked = health.mark_stale_hosts_down()
    # then only the silent one is down
    assert marked == [silent.pk]
    recent.refresh_from_db()
    assert recent.state == HostState.UP
    # and the limit is a setting
    settings.HOST_DOWN_AFTER_S = 30
    assert health.mark_stale_hosts_down() == [recent.pk]


def test_it_keeps_gpus_in_step_with_the_host():
    # given a large host with a GPU row the host no longer reports and a T4 whose vGPUs are in use
    host = register_host(LARGE_URI, name="large")
    ghost = HostDevice.objects.create(host=host, pci_address="0000:99:00.0")
    t4 = HostDevice.objects.get(host=host, pci_address="0000:3b:00.0")
    scheduling.place(PlacementRequest(desktop_id=1, vcpus=1, memory_mib=256, gpu_profile="mdev:nvidia-230"))
    HostDevice.objects.filter(pk=t4.pk).update(mdev_types={"nvidia-230": {"name": "x", "max_instances": 2}})
    # when a heartbeat runs (the driver reports nvidia-222 and nvidia-230)
    health.heartbeat(host_id=host.pk)
    # then the vanished GPU is marked absent, not deleted
    ghost.refresh_from_db()
    assert ghost.present is False
    # and the T4's types are not overwritten while Quetzal holds vGPUs on it
    t4.refresh_from_db()
    assert t4.mdev_types == {"nvidia-230": {"name": "x", "max_instances": 2}}
    # and once it is idle again they are refreshed
    scheduling.release(1)
    health.heartbeat(host_id=host.pk)
    t4.refresh_from_db()
    assert set(t4.mdev_types) == {"nvidia-222", "nvidia-230"}


def test_it_repairs_capacity_counters_on_heartbeat():
    # given a host whose counters drifted from its allocations
    host = register_host(SMALL_URI, name="small")
    Host.objects.filter(pk=host.pk).update(allocated_vcpus=5, allocated_memory_mib=999)
    # when a heartbeat runs, then the counters match the (empty) allocations
    host = health.heartbeat(host_id=host.pk)
    assert (host.allocated_vcpus, host.allocated_memory_mib) == (0, 0)


def test_it_refuses_a_heartbeat_of_an_unknown_host():
    # given no such host, when a heartbeat is asked for it, then it is not found
    with pytest.raises(NotFound):
        health.heartbeat(host_id=424242)


def test_it_queues_one_heartbeat_per_host_and_marks_silent_hosts_down(monkeypatch):
    # given two hosts, one silent for two minutes
    fresh = HostFactory()
    silent = HostFactory(last_heartbeat_at=timezone.now() - timedelta(minutes=2))
    queued = []
    monkeypatch.setattr(tasks.heartbeat_host, "apply_async", lambda args, **kw: queued.append((args, kw)))
    # when the beat task runs
    assert tasks.heartbeat_all() == 2
    # then each host gets a heartbeat that expires before the next beat
    assert sorted(queued) == [((fresh.pk,), {"expires": 15}), ((silent.pk,), {"expires": 15})]
    silent.refresh_from_db()
    assert silent.state == HostState.DOWN


def test_it_runs_the_per_host_task_and_ignores_deleted_hosts():
    # given a registered host
    host = register_host(SMALL_URI, name="small")
    Host.objects.filter(pk=host.pk).update(cpus=1)
    # when the task runs for it and for a host that no longer exists
    tasks.heartbeat_host(host.pk)
    tasks.heartbeat_host(424242)
    # then the existing host is refreshed and the missing one is no error
    host.refresh_from_db()
    assert host.cpus == 2


def test_it_marks_a_dead_host_down_within_a_minute_with_the_default_settings():
    from django.conf import settings as django_settings

    # Given the shipped defaults: a host dies right after a heartbeat it answered
    silence, interval = django_settings.HOST_DOWN_AFTER_S, django_settings.HOST_HEARTBEAT_INTERVAL_S
    beat = django_settings.CELERY_BEAT_SCHEDULE["hosts-heartbeat"]["schedule"]
    # Then the first beat after the silence limit marks it down, at the latest 60 s after it died
    assert beat == interval
    assert silence + interval <= 60
