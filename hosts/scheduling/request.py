"""What a placement asks for and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils.translation import gettext

from hosts.choices import GpuProfileKind
from hosts.hypervisor.platform import FIRMWARES
from quetzal.errors import ServiceError


@dataclass(frozen=True)
class GpuNeed:
    """A parsed GPU profile."""

    kind: GpuProfileKind
    mdev_type: str = ""

    @property
    def label(self) -> str:
        return f"a GPU of type {self.mdev_type}" if self.kind == GpuProfileKind.MDEV else "a GPU for passthrough"


def parse_gpu_profile(profile: str) -> GpuNeed:
    """none, passthrough or mdev:<type>; anything else is refused."""
    if profile in ("", GpuProfileKind.NONE):
        return GpuNeed(GpuProfileKind.NONE)
    if profile == GpuProfileKind.PASSTHROUGH:
        return GpuNeed(GpuProfileKind.PASSTHROUGH)
    if profile.startswith("mdev:") and profile[5:]:
        return GpuNeed(GpuProfileKind.MDEV, profile[5:])
    raise ServiceError(
        f"Unknown GPU profile {profile!r}: use none, passthrough or mdev:<type>.", code="invalid_request"
    )


@dataclass(frozen=True)
class PlacementRequest:
    """What a desktop needs from a host."""

    desktop_id: int
    vcpus: int
    memory_mib: int
    image_id: int | None = None
    gpu_profile: str = "none"  # none | passthrough | mdev:<type>
    virt_type: str | None = None
    exclude_host_ids: frozenset[int] = frozenset()
    # Where the person's home disk lives: ranked first when it passes the filters (no volume move needed).
    prefer_host_id: int | None = None
    # The guest's firmware and TPM (desktops.services.guest_platform): Windows 11 needs UEFI Secure Boot and a TPM.
    firmware: str = "bios"  # bios | uefi | uefi-secure
    tpm: bool = False
    gpu: GpuNeed = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.vcpus < 1 or self.memory_mib < 1:
            raise ServiceError(gettext("A desktop needs at least 1 vCPU and 1 MiB of RAM."), code="invalid_request")
        # Parsed once, so a bad profile fails here and the filters read it without parsing.
        object.__setattr__(self, "gpu", parse_gpu_profile(self.gpu_profile))
        if self.firmware not in FIRMWARES:
            raise ServiceError(
                f"Unknown firmware {self.firmware!r}: use {', '.join(FIRMWARES)}.", code="invalid_request"
            )

    @property
    def platform_needs(self) -> list[str]:
        """The host features this guest's virtual PC needs, as Host fields."""
        needs = ["offers_uefi"] if self.firmware != "bios" else []
        if self.firmware == "uefi-secure":
            needs.append("offers_secure_boot")
        if self.tpm:
            needs.append("offers_tpm")
        return needs


@dataclass(frozen=True)
class Placement:
    """Where a desktop went: its host and, for GPU desktops, the device it holds."""

    host_id: int
    gpu_device_id: int | None
