"""Operations: every piece of work a request starts, with its progress and outcome."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from desktops.choices import IN_FLIGHT_STATUSES, OperationKind, OperationStatus
from tenants.querysets import TenantOwned, TenantQuerySet


class OperationQuerySet(TenantQuerySet):
    def in_flight(self) -> OperationQuerySet:
        return self.filter(status__in=IN_FLIGHT_STATUSES)


# A named manager class: type checkers see the queryset's methods on `objects`.
OperationManager = models.Manager.from_queryset(OperationQuerySet)


class Operation(TenantOwned):
    """One unit of lifecycle work on one desktop, run by a Celery worker."""

    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="operations"
    )
    desktop = models.ForeignKey(
        "desktops.Desktop", verbose_name=_("desktop"), on_delete=models.CASCADE, related_name="operations"
    )
    kind = models.CharField(verbose_name=_("kind"), max_length=20, choices=OperationKind.choices)
    status = models.CharField(
        verbose_name=_("status"), max_length=16, choices=OperationStatus.choices, default=OperationStatus.QUEUED
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("actor"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    params = models.JSONField(verbose_name=_("params"), default=dict, blank=True)
    celery_task_id = models.CharField(verbose_name=_("celery task id"), max_length=64, blank=True)
    worker = models.CharField(verbose_name=_("worker"), max_length=200, blank=True)
    queued_at = models.DateTimeField(verbose_name=_("queued at"), default=timezone.now)
    started_at = models.DateTimeField(verbose_name=_("started at"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        verbose_name=_("heartbeat at"), null=True, blank=True, help_text=_("Touched at every step by the worker.")
    )
    finished_at = models.DateTimeField(verbose_name=_("finished at"), null=True, blank=True)
    step = models.CharField(verbose_name=_("step"), max_length=32, blank=True)
    steps = models.JSONField(verbose_name=_("steps"), default=list, blank=True)
    error_code = models.CharField(verbose_name=_("error code"), max_length=64, blank=True)
    error = models.TextField(verbose_name=_("error"), blank=True)

    objects: ClassVar[OperationManager] = OperationManager()

    class Meta:
        verbose_name = _("desktop operation")
        verbose_name_plural = _("desktop operations")
        ordering = ["-queued_at", "-id"]
        constraints = [
            # The database itself refuses a second operation in flight on one desktop.
            models.UniqueConstraint(
                fields=["desktop"],
                condition=Q(status__in=IN_FLIGHT_STATUSES),
                name="one_operation_in_flight_per_desktop",
            )
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.desktop_id} ({self.status})"

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None
