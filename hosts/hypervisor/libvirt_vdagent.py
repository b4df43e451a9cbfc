"""The clipboard channel (qemu-vdagent) around saving memory: unplugged for a save or a move, plugged back after.

QEMU before 8.1 puts a migration blocker on the qemu-vdagent chardev ("The vdagent chardev doesn't yet support
migration"), and saving memory (a managed save, a snapshot of a running VM) is a migration to a file: with the
channel plugged, a graphical desktop could neither hibernate nor move. The channel is unplugged from the running
VM only (its definition keeps it), which lifts the blocker, and plugged back once the VM runs again; the guest's
spice-vdagentd reopens the port when it comes back (hosts/demo_graphical.py keeps it running).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

import libvirt
from lxml import etree

from hosts.hypervisor.domain import parse_xml

__all__ = ["needs_unplug", "plug_back", "unplugged"]

log = logging.getLogger(__name__)

# libvirt's encoding of QEMU 8.1.0, the first QEMU that migrates the vdagent chardev.
MIGRATABLE_FROM_QEMU = 8_001_000
# libvirt waits 5 s for QEMU to confirm a removal; a guest slow to let go of the port gets this much more.
REMOVAL_WAIT_S = 10.0
_CHANNEL = "devices/channel[@type='qemu-vdagent']"


def _channel(dom: libvirt.virDomain, flags: int = 0) -> etree._Element | None:
    return parse_xml(dom.XMLDesc(flags)).find(_CHANNEL)


def needs_unplug(dom: libvirt.virDomain) -> bool:
    """Whether this running VM has a clipboard channel its QEMU cannot save or migrate."""
    conn = dom.connect()
    if conn.getType() != "QEMU" or conn.getVersion() >= MIGRATABLE_FROM_QEMU:
        return False
    return dom.isActive() and _channel(dom) is not None


def _device_xml(channel: etree._Element) -> str:
    """The channel as a device to attach: without the alias libvirt gave the old one."""
    for alias in channel.findall("alias"):
        channel.remove(alias)
    target = channel.find("target")
    if target is not None:
        target.attrib.pop("state", None)  # live-only: whether the guest has the port open
    return etree.tostring(channel, encoding="unicode")


def _unplug(dom: libvirt.virDomain) -> None:
    channel = _channel(dom)
    if channel is None:
        return
    dom.detachDeviceFlags(_device_xml(channel), libvirt.VIR_DOMAIN_AFFECT_LIVE)
    deadline = time.monotonic() + REMOVAL_WAIT_S
    while _channel(dom) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    # Still there: the save or move that follows fails with QEMU's own message, which says why.


def plug_back(dom: libvirt.virDomain) -> None:
    """A running VM whose definition has the clipboard channel but whose live devices lack it gets it again.

    Never fails the operation it follows: without the channel only the clipboard waits for the next start.
    """
    try:
        if not dom.isActive() or _channel(dom) is not None:
            return
        defined = _channel(dom, libvirt.VIR_DOMAIN_XML_INACTIVE)
        if defined is not None:
            dom.attachDeviceFlags(_device_xml(defined), libvirt.VIR_DOMAIN_AFFECT_LIVE)
    except libvirt.libvirtError as exc:
        # A VM that moved away (undefined here) has nothing to plug back into.
        if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
            log.warning("cannot plug the clipboard channel back into %s: %s", dom.name(), exc)


@contextlib.contextmanager
def unplugged(dom: libvirt.virDomain) -> Iterator[None]:
    """The block runs with the clipboard channel unplugged (when QEMU needs it); a VM still running here after
    it (a running snapshot, a save or move that failed) gets the channel back."""
    if not needs_unplug(dom):
        yield
        return
    _unplug(dom)
    try:
        yield
    finally:
        plug_back(dom)
