"""A desktop placed with a whole GPU gets it passed through in its domain XML."""

from __future__ import annotations

from lxml import etree

from desktops.services import spec
from desktops.tests.factories import DesktopFactory
from hosts.models import HostDevice


def test_it_passes_the_placed_gpu_through(alice, host, template):
    # Given a desktop placed on a host together with one of its GPUs
    gpu = HostDevice.objects.create(host=host, pci_address="0000:3b:00.0", vendor_name="NVIDIA", product_name="A16")
    desktop = DesktopFactory(world=alice, template=template, name="gpu", host=host)
    # When its domain is described
    xml = spec.domain_spec(
        desktop, disk_path="/var/lib/libvirt/images/d.qcow2", seed_path=None, image_copy=None, host=host, gpu_device=gpu
    ).to_xml()
    # Then the GPU is a managed PCI hostdev at its address, and a desktop without one has none
    address = etree.fromstring(xml.encode()).find("devices/hostdev/source/address")
    assert (address.get("bus"), address.get("slot"), address.get("function")) == ("0x3b", "0x00", "0x0")
    plain = spec.domain_spec(desktop, disk_path="/d.qcow2", seed_path=None, image_copy=None, host=host).to_xml()
    assert "<hostdev" not in plain
