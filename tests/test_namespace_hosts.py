"""The namespace-host harness: three real, separate libvirtd hosts, each reachable on its own address."""

from __future__ import annotations

import pytest

from tests.namespace_hosts import namespace_hosts  # noqa: F401  (fixture)

pytestmark = pytest.mark.multihost


def test_it_starts_three_distinct_hosts_reachable_over_tcp(namespace_hosts):  # noqa: F811
    # Given the three hosts of the harness
    hosts = namespace_hosts
    # When each is asked who it is over its own TCP address
    names = [h.virsh("hostname").strip() for h in hosts]
    uuids = [h.virsh("capabilities").split("<uuid>")[1].split("</uuid>")[0] for h in hosts]
    # Then they are three hosts, with their own names and host UUIDs (migration needs distinct ones)
    assert names == ["nshost1", "nshost2", "nshost3"]
    assert uuids == [h.host_uuid for h in hosts]
    assert len({h.address for h in hosts}) == 3
    for host in hosts:
        assert host.uri == f"qemu+tcp://{host.address}/system"
        assert "default" in host.virsh("pool-list", "--name")


def test_it_keeps_each_hosts_libvirt_state_private(namespace_hosts):  # noqa: F811
    # Given a volume made on the first host
    first, second, _ = namespace_hosts
    first.virsh("vol-create-as", "default", "qtest-private.qcow2", "1M", "--format", "qcow2")
    try:
        # Then the second host does not see it, and the machine's own libvirt dirs do not hold it
        assert "qtest-private.qcow2" in first.virsh("vol-list", "default")
        assert "qtest-private.qcow2" not in second.virsh("vol-list", "default")
        assert not (first.root.parent / "qtest-private.qcow2").exists()
        assert (first.root / "lib" / "images" / "qtest-private.qcow2").exists()
    finally:
        first.virsh("vol-delete", "qtest-private.qcow2", "--pool", "default", check=False)


def test_it_takes_a_host_down_and_back(namespace_hosts):  # noqa: F811
    # Given a running host
    host = namespace_hosts[2]
    # When its libvirtd is killed, it stops answering; when restarted it answers again
    host.kill_libvirtd()
    assert host.virsh("uri", check=False) == ""
    host.start_libvirtd()
    assert host.virsh("uri").strip() == host.uri
