"""manage.py build_demo_image: import the built demo and create the public "Demo Linux" template."""

from __future__ import annotations

import hashlib
import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from desktops.models import DesktopTemplate
from hosts import demo_graphical, demo_image
from hosts.choices import CopyState
from hosts.models import Image, ImageCopy
from hosts.services import images
from hosts.tests.factories import HostFactory
from hosts.tests.fakes import RecordingHypervisor, qcow2_bytes

pytestmark = pytest.mark.django_db


def fake_build(tmp_path: Path, content: bytes = b"", *, guest_agent: bool = True):
    """A stand-in for the real build (which needs Debian's kernel and busybox): same result shape."""

    def build(dest: Path, **kwargs) -> demo_image.DemoImage:
        disk = tmp_path / "disk.qcow2"
        disk.write_bytes(qcow2_bytes(64 * 1024 * 1024) + content)
        (tmp_path / "vmlinuz").write_bytes(b"kernel")
        (tmp_path / "initrd.img").write_bytes(b"initrd")
        return demo_image.DemoImage(
            kernel=tmp_path / "vmlinuz",
            initrd=tmp_path / "initrd.img",
            disk=disk,
            cmdline=demo_image.DEMO_CMDLINE,
            disk_sha256=hashlib.sha256(disk.read_bytes()).hexdigest(),
            guest_agent=guest_agent,
        )

    return build


def test_it_imports_the_demo_image_and_creates_the_public_template(monkeypatch, tmp_path):
    # given a demo build
    monkeypatch.setattr(demo_image, "build_demo_image", fake_build(tmp_path))
    # when the command runs twice
    call_command("build_demo_image", "--dest", str(tmp_path), "--no-copy")
    call_command("build_demo_image", "--dest", str(tmp_path), "--no-copy")
    # then one image with its kernel, initrd and command line exists
    image = Image.objects.get()
    assert image.name == "Demo Linux image" and image.format == "qcow2"
    assert image.kernel_path.endswith("vmlinuz") and image.cmdline == demo_image.DEMO_CMDLINE
    # and one public template of the agreed size and price uses it
    template = DesktopTemplate.objects.get(name="Demo Linux")
    assert template.image == image and template.tenant is None and template.visibility == "public"
    assert (template.vcpus, template.memory_mib, template.disk_gib) == (1, 256, 1)
    assert template.price_per_hour == Decimal("0.05")


def test_it_moves_the_template_to_a_rebuilt_image(monkeypatch, tmp_path):
    # given a demo imported once
    monkeypatch.setattr(demo_image, "build_demo_image", fake_build(tmp_path))
    call_command("build_demo_image", "--no-copy")
    # when a different build (a new kernel) is imported
    monkeypatch.setattr(demo_image, "build_demo_image", fake_build(tmp_path, b"new"))
    call_command("build_demo_image", "--no-copy")
    # then both images exist and the template uses the new one
    assert Image.objects.count() == 2
    assert DesktopTemplate.objects.get(name="Demo Linux").image.name.startswith("Demo Linux image ")


def test_it_copies_the_demo_to_enabled_hosts(monkeypatch, tmp_path):
    # given an enabled host reached through a recording driver, and a disabled one
    host = HostFactory()
    HostFactory(enabled=False)
    driver = RecordingHypervisor()
    monkeypatch.setattr(images, "get_hypervisor", lambda uri: driver)
    monkeypatch.setattr(demo_image, "build_demo_image", fake_build(tmp_path))
    # when the command runs
    call_command("build_demo_image")
    # then the disk, kernel and initrd are on the enabled host only
    copy = ImageCopy.objects.get()
    assert copy.host == host and copy.state == CopyState.READY
    assert len(driver.volumes) == 3


def test_it_fails_clearly_when_the_image_cannot_be_built(monkeypatch):
    # given a machine without a Debian kernel
    def missing(dest, **kwargs):
        raise demo_image.DemoImageError("no kernel in /boot")

    monkeypatch.setattr(demo_image, "build_demo_image", missing)
    # when the command runs, then it says why and imports nothing
    with pytest.raises(CommandError, match="no kernel in /boot"):
        call_command("build_demo_image", "--no-copy")
    assert not Image.objects.exists()


def test_it_registers_the_graphical_demo_beside_the_text_one(monkeypatch, tmp_path):
    # given both builds (the graphical one stands in for mmdebstrap, which needs minutes and the mirror)
    text_dir, graphical_dir = tmp_path / "text", tmp_path / "graphical"
    text_dir.mkdir()
    graphical_dir.mkdir()
    monkeypatch.setattr(demo_image, "build_demo_image", fake_build(text_dir))
    monkeypatch.setattr(demo_graphical, "build_graphical_image", fake_build(graphical_dir, b"graphical"))
    # when the text and then the graphical demo are built
    call_command("build_demo_image", "--no-copy")
    call_command("build_demo_image", "--graphical", "--no-copy")
    # then the text demo stays, and the desktop template has the clipboard channel and sound
    text = DesktopTemplate.objects.get(name="Demo Linux")
    desktop = DesktopTemplate.objects.get(name="Demo Linux desktop")
    assert not text.clipboard_channel and not text.sound
    assert desktop.clipboard_channel and desktop.sound and desktop.visibility == "public"
    assert desktop.disk_gib * 1024**3 >= demo_graphical.ROOT_SIZE_BYTES
    # and each image knows the line its guest prints when it is ready for input
    assert text.image.ready_line == demo_image.READY_BANNER
    assert desktop.image.ready_line == demo_graphical.READY_LINE
    assert text.image != desktop.image


def test_it_prints_the_recipe_hash_for_a_ci_cache_key(capsys):
    # when the hash is asked for, then it is the recipe's, and nothing is built or imported
    call_command("build_demo_image", "--print-recipe-hash")
    printed = capsys.readouterr().out.strip()
    assert printed == demo_graphical.recipe_hash(demo_graphical.current_recipe())
    assert len(printed) == 64 and not Image.objects.exists()


@pytest.mark.parametrize("guest_agent", [True, False])
def test_it_warns_when_the_demo_has_no_guest_agent(monkeypatch, tmp_path, guest_agent):
    # given a build on a machine with or without qemu-guest-agent
    monkeypatch.setattr(demo_image, "build_demo_image", fake_build(tmp_path, guest_agent=guest_agent))
    err = io.StringIO()
    # when the command runs
    call_command("build_demo_image", "--dest", str(tmp_path), "--no-copy", stdout=io.StringIO(), stderr=err)
    # then it still imports the image, and says what the file manager will lack only when the agent is missing
    assert Image.objects.count() == 1
    assert ("qemu-guest-agent is not installed" in err.getvalue()) is not guest_agent
