"""Base disk images and their copies in each host's storage pool."""

from __future__ import annotations

from pathlib import Path

from django.db import models
from django.utils.translation import gettext_lazy as _

from hosts.choices import CopyState, ImageFormat


class Image(models.Model):
    """A base disk (qcow2 or raw), checksummed; desktops get linked clones of its host copies."""

    name = models.CharField(verbose_name=_("name"), max_length=200, unique=True)
    format = models.CharField(
        verbose_name=_("format"), max_length=8, choices=ImageFormat.choices, default=ImageFormat.QCOW2
    )
    # Uploaded through the admin (under MEDIA_ROOT/images/) or imported in place from a local path.
    file = models.FileField(verbose_name=_("file"), upload_to="images/", blank=True)
    source_path = models.CharField(verbose_name=_("source path"), max_length=1000, blank=True)
    size_bytes = models.PositiveBigIntegerField(verbose_name=_("size bytes"), default=0)
    virtual_size_bytes = models.PositiveBigIntegerField(
        verbose_name=_("virtual size bytes"), default=0, help_text=_("The disk size the guest sees.")
    )
    sha256 = models.CharField(verbose_name=_("sha256"), max_length=64)
    # Direct kernel boot (the demo image): paths on this machine, copied to hosts with the disk.
    kernel_path = models.CharField(verbose_name=_("kernel path"), max_length=1000, blank=True)
    initrd_path = models.CharField(verbose_name=_("initrd path"), max_length=1000, blank=True)
    cmdline = models.CharField(verbose_name=_("cmdline"), max_length=1000, blank=True)
    # The guest prints this at the start of a line on its serial port once it is ready for input.
    ready_line = models.CharField(verbose_name=_("ready line"), max_length=64, blank=True)
    description = models.CharField(verbose_name=_("description"), max_length=300, blank=True)
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("image")
        verbose_name_plural = _("images")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=~models.Q(file="") | ~models.Q(source_path=""), name="image_has_a_file"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def local_path(self) -> Path:
        """Where the image's bytes are on this machine."""
        return Path(self.file.path) if self.file else Path(self.source_path)

    @property
    def direct_kernel_boot(self) -> bool:
        return bool(self.kernel_path)


class ImageCopy(models.Model):
    """An image's volumes in one host's storage pool; state changes through guarded updates."""

    image = models.ForeignKey(Image, verbose_name=_("image"), on_delete=models.CASCADE, related_name="copies")
    host = models.ForeignKey(
        "hosts.Host", verbose_name=_("host"), on_delete=models.CASCADE, related_name="image_copies"
    )
    state = models.CharField(
        verbose_name=_("state"), max_length=16, choices=CopyState.choices, default=CopyState.PENDING, db_index=True
    )
    pool = models.CharField(verbose_name=_("pool"), max_length=100, blank=True)
    volume_name = models.CharField(verbose_name=_("volume name"), max_length=255, blank=True)
    volume_path = models.CharField(verbose_name=_("volume path"), max_length=1000, blank=True)
    kernel_volume = models.CharField(verbose_name=_("kernel volume"), max_length=255, blank=True)
    kernel_path = models.CharField(verbose_name=_("kernel path"), max_length=1000, blank=True)
    initrd_volume = models.CharField(verbose_name=_("initrd volume"), max_length=255, blank=True)
    initrd_path = models.CharField(verbose_name=_("initrd path"), max_length=1000, blank=True)
    error = models.TextField(verbose_name=_("error"), blank=True)
    started_at = models.DateTimeField(verbose_name=_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(verbose_name=_("finished at"), null=True, blank=True)
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("image copy")
        ordering = ["image", "host"]
        constraints = [models.UniqueConstraint(fields=["image", "host"], name="imagecopy_one_per_host")]
        verbose_name_plural = _("image copies")

    def __str__(self) -> str:
        return f"{self.image} on {self.host} ({self.state})"
