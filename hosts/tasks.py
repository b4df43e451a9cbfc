"""Celery tasks of the hosts app: thin wrappers that take ids and call one service."""

from __future__ import annotations

import logging

from celery import shared_task

from hosts import conf
from hosts.hypervisor import HostUnavailable
from hosts.models import Host, Image
from hosts.services import health, images
from quetzal.errors import NotFound, ServiceError

log = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def heartbeat_all() -> int:
    """Beat (every HOST_HEARTBEAT_INTERVAL_S): one heartbeat task per host, then mark silent hosts down."""
    interval = conf.heartbeat_interval_s()
    host_ids = list(Host.objects.values_list("pk", flat=True))
    for host_id in host_ids:
        # A heartbeat queued behind a busy worker is worthless after the next one is due.
        heartbeat_host.apply_async((host_id,), expires=interval)
    health.mark_stale_hosts_down()
    return len(host_ids)


@shared_task(ignore_result=True)
def heartbeat_host(host_id: int) -> None:
    """Refresh one host's facts, capacity and health."""
    try:
        health.heartbeat(host_id=host_id)
    except NotFound:
        return


@shared_task(
    bind=True,
    ignore_result=True,
    autoretry_for=(HostUnavailable,),
    retry_backoff=30,
    retry_backoff_max=600,
    max_retries=5,
)
def copy_image_to_host(self, image_id: int, host_id: int) -> None:
    """Copy one image to one host; an unreachable host is retried with backoff."""
    image = Image.objects.filter(pk=image_id).first()
    host = Host.objects.filter(pk=host_id).first()
    if image is None or host is None:
        return
    try:
        images.copy_image_to_host(image=image, host=host)
    except HostUnavailable:
        raise
    except ServiceError as exc:
        # Recorded on the ImageCopy row; retrying a bad file or a full pool would fail the same way.
        log.warning("copy of image %s to host %s failed: %s", image_id, host_id, exc.detail)


@shared_task(ignore_result=True)
def copy_images_to_host(host_id: int) -> None:
    """Queue copies of every image to one host (after it is registered)."""
    host = Host.objects.filter(pk=host_id).first()
    if host is None:
        return
    for image in Image.objects.all():
        images.request_copies(image=image, hosts=[host])
