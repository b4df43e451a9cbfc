"""libvirt test-driver URIs for hosts of different sizes, and one that never answers."""

from __future__ import annotations

from pathlib import Path

HOSTXML = Path(__file__).resolve().parent / "hostxml"

# test:///default: 16 CPUs and a pool named "default-pool".
DEFAULT_URI = "test:///default"
DEFAULT_POOL = "default-pool"
# 2 CPUs, 4 GiB, no GPU; pool "default".
SMALL_URI = f"test://{HOSTXML / 'small.xml'}"
# 64 CPUs, 256 GiB, a vGPU-capable T4, an RTX A5000 and a NIC; pool "default".
LARGE_URI = f"test://{HOSTXML / 'large.xml'}"
# Nothing listens on port 1: the connection is refused at once.
DEAD_URI = "qemu+tcp://127.0.0.1:1/system"


def without_tenant_networks(*uris: str) -> None:
    """Remove the tenant networks earlier tests left on these test-driver hosts.

    The test driver keeps its state per URI for the whole process, and a subnet a host already has is not free
    to carve (hosts.services.networks), so each test starts from the host's own XML.
    """
    from hosts.hypervisor import get_hypervisor

    for uri in uris:
        hv = get_hypervisor(uri)
        for name, _cidr in hv.network_subnets():
            if name.startswith("quetzal-"):
                hv.network_remove(name)
