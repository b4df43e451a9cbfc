"""Errors raised by the hosts services and the scheduling package, each with a stable code.

A host that does not answer is hosts.hypervisor.HostUnavailable, raised by the driver and the
services alike (it is a ServiceError too).
"""

from __future__ import annotations

from quetzal.errors import Conflict, ServiceError


class HostExists(Conflict):
    """A host with that URI or name is already registered."""

    code = "host_exists"


class StoragePoolMissing(ServiceError):
    """The host has no storage pool of the configured name."""

    code = "pool_not_found"


class InvalidImage(ServiceError):
    """The image file is missing, unreadable or not in the stated format."""

    code = "invalid_image"


class ChecksumMismatch(ServiceError):
    """The image's SHA-256 is not the one the operator expected."""

    code = "checksum_mismatch"


class ImageExists(Conflict):
    """An image of that name with different content is already registered."""

    code = "image_exists"


class ImageCopyFailed(ServiceError):
    """Copying an image to a host failed; the copy row holds the error."""

    code = "image_copy_failed"
    status = 502


class ImageNotReady(Conflict):
    """The image has not been copied to that host yet."""

    code = "image_not_ready"


class NoCapacity(ServiceError):
    """No host can take the desktop; the message and `reason` say why."""

    code = "no_capacity"
    status = 409

    def __init__(self, detail: str, *, reason: str = "full") -> None:
        super().__init__(detail)
        # A machine-readable why: too_big, full, host_would_swap, no_gpu, gpu_busy, no_image, no_host, ...
        self.reason = reason
