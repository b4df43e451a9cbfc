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
