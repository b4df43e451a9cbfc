"""What each scheduler filter says when it leaves no host, word for word: the text an operator reads."""

from __future__ import annotations

import pytest
from django.utils import timezone

from hosts.choices import SchedulerStrategy
from hosts.models import Host
from hosts.scheduling import PlacementRequest
from hosts.scheduling.filters import (
    FILTERS,
    AvailabilityFilter,
    CpuFilter,
    EnabledFilter,
    ExcludeFilter,
    GpuFreeFilter,
    GpuPresentFilter,
    HealthFilter,
    ImageFilter,
    RamFilter,
    SizeFilter,
    VirtTypeFilter,
    condition,
    size_label,
    vcpus_label,
    where,
)
from hosts.scheduling.weighers import weight_sql
from hosts.tests.factories import HostFactory, ImageFactory

pytestmark = pytest.mark.django_db


def _request(**overrides) -> PlacementRequest:
    return PlacementRequest(**{"desktop_id": 1, "vcpus": 2, "memory_mib": 4096, **overrides})


MDEV = _request(gpu_profile="mdev:nvidia-63")
PASSTHROUGH = _request(gpu_profile="passthrough")

MESSAGES = [
    (
        ExcludeFilter(),
        _request(exclude_host_ids=frozenset({1})),
        "no host is left once the excluded hosts are set aside",
    ),
    (EnabledFilter(), _request(), "no host is enabled"),
    (AvailabilityFilter(), _request(), "every enabled host is in maintenance or draining"),
    (HealthFilter(), _request(), "no enabled host is up (none answered in the last 40 s)"),
    (VirtTypeFilter(), _request(virt_type="kvm"), "no usable host runs kvm guests"),
    (ImageFilter(), _request(), "no image was asked for"),
    (ImageFilter(), _request(image_id=987654), "image 987654 does not exist"),
    (GpuPresentFilter(), PASSTHROUGH, "no host has a GPU for passthrough"),
    (GpuPresentFilter(), MDEV, "no host has a GPU of type nvidia-63"),
    (SizeFilter(), _request(vcpus=1, memory_mib=1536), "no host is big enough for 1 vCPU and 1536 MiB RAM"),
    (CpuFilter(), _request(vcpus=1), "no enabled host has 1 vCPU free"),
    (CpuFilter(), _request(vcpus=3), "no enabled host has 3 vCPUs free"),
    (RamFilter(), _request(memory_mib=4096), "no enabled host has 4 GiB RAM free"),
    (RamFilter(), _request(memory_mib=1500), "no enabled host has 1500 MiB RAM free"),
    (GpuFreeFilter(), PASSTHROUGH, "every host with a GPU for passthrough has it in use"),
    (GpuFreeFilter(), MDEV, "every host with a GPU of type nvidia-63 has it in use"),
]


@pytest.mark.parametrize(("rule", "request_", "message"), MESSAGES, ids=[m[2] for m in MESSAGES])
def test_it_says_in_words_which_rule_left_no_host(rule, request_, message):
    assert rule.message(request_, Host.objects.none()) == message


def test_it_names_an_image_that_is_not_ready_anywhere():
    image = ImageFactory(name="Ubuntu 24.04")
    assert ImageFilter().message(_request(image_id=image.pk), Host.objects.none()) == (
        "image 'Ubuntu 24.04' is not ready on any usable host; copy it to the hosts first"
    )


def test_it_names_the_largest_host_when_a_desktop_is_too_big_for_all():
    HostFactory(cpus=4, memory_mib=8 * 1024, cpu_ratio=2, ram_ratio=1, reserved_memory_mib=0)
    HostFactory(cpus=2, memory_mib=16 * 1024, cpu_ratio=1, ram_ratio=1, reserved_memory_mib=0)
    message = SizeFilter().message(_request(vcpus=64, memory_mib=65536), Host.objects.all())
    assert message == "no host is big enough for 64 vCPUs and 64 GiB RAM: the largest offer 8 vCPUs and 16 GiB RAM"


@pytest.mark.parametrize(
    ("mib", "label"),
    [(512, "512 MiB"), (1023, "1023 MiB"), (1024, "1 GiB"), (1536, "1536 MiB"), (2048, "2 GiB"), (3072.0, "3 GiB")],
)
def test_it_writes_ram_in_the_unit_an_operator_would(mib, label):
    assert size_label(mib) == label


@pytest.mark.parametrize(("count", "label"), [(0, "0 vCPUs"), (1, "1 vCPU"), (2, "2 vCPUs")])
def test_it_writes_vcpus_in_the_singular_for_one(count, label):
    assert vcpus_label(count) == label


def test_it_gives_each_rule_a_name_and_a_reason_code():
    assert [(f.name, f.reason) for f in FILTERS] == [
        ("exclude", "excluded"),
        ("enabled", "no_host"),
        ("availability", "no_host"),
        ("health", "hosts_down"),
        ("virt_type", "virt_type"),
        ("platform", "no_platform"),
        ("image", "no_image"),
        ("gpu_present", "no_gpu"),
        ("size", "too_big"),
        ("cpu", "full"),
        ("ram", "full"),
        ("swap_guard", "host_would_swap"),
        ("gpu_free", "gpu_busy"),
    ]


# The combined condition


def test_it_lets_every_host_through_when_no_rule_is_given():
    assert where(_request(), timezone.now(), filters=()) == ("TRUE", [])


def test_it_checks_only_the_rules_it_is_given():
    in_maintenance = HostFactory(maintenance=True)
    only_enabled = condition(_request(), timezone.now(), filters=(EnabledFilter(),))
    assert list(Host.objects.filter(only_enabled)) == [in_maintenance]
    assert not Host.objects.filter(condition(_request(), timezone.now())).exists()


def test_it_weighs_by_the_strategy_asked_for_not_only_the_configured_one(settings):
    settings.SCHEDULER_STRATEGY = "spread"
    assert weight_sql(SchedulerStrategy.PACK)[1] == [-2.0, -1.0]
    assert weight_sql(SchedulerStrategy.SPREAD)[1] == [2.0, 1.0]
