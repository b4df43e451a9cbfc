"""Tenant networks and per-desktop filters enforced by a real host kernel, seen from three real demo guests.

Two desktops of alice and one of bob boot once (CPU is scarce); their init probes every other guest and both
gateways round after round on the serial console. The assertions read those reports: isolation, the
host-route bypass, a live deny rule for one guest, and alice's policy letting her desktops meet.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from lxml import etree

from desktops.choices import DesktopState
from desktops.models import Desktop
from desktops.services import execution, firewall, spec
from desktops.services.requests import request_action, request_create
from hosts.demo_image import NET_BANNER, PROBE_BANNER
from hosts.hypervisor import get_hypervisor
from hosts.services.networks import lease_of
from quetzal.celery import app as celery_app
from tests.services import require_module
from tests.waiting import wait_until

pytestmark = pytest.mark.qemu

libvirt = require_module("libvirt", "libvirt-python (make libvirt-binding)")

_PROBE_RE = re.compile(re.escape(PROBE_BANNER) + r" (\d+) ([\d.]+) ([\d.]+) ping=(ok|no) tcp=(ok|no)")
GUEST_PORT = 8080
DNS_PORT = 53


@pytest.fixture
def private_range(settings):
    """A range no other test run on this shared libvirtd uses (10.200/16 is the product's default)."""
    settings.TENANT_NETWORK_RANGE = f"10.{random.randint(201, 250)}.0.0/16"
    settings.TENANT_SUBNET_PREFIX = 24
    settings.TENANT_NETWORKS = True


@pytest.fixture
def eager():
    """Operations and filter re-applications run in-process when their transaction commits."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


class Guest:
    """One booted desktop: its lease and what its probe has reported so far."""

    def __init__(self, desktop: Desktop) -> None:
        self.desktop = desktop
        lease = lease_of(desktop.pk)
        assert lease is not None, "a placed desktop has a lease"
        self.lease = lease
        self.ip = lease.ip
        self.gateway = lease.network.gateway
        self.log = Path(spec.serial_log_path(desktop))

    def text(self) -> str:
        try:
            return self.log.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def results(self, after_round: int = 0) -> dict[str, tuple[int, str, str]]:
        """Target ip -> (round, ping, tcp) of the newest report past after_round."""
        out: dict[str, tuple[int, str, str]] = {}
        for match in _PROBE_RE.finditer(self.text()):
            number, _me, target, ping, tcp = match.groups()
            if int(number) > after_round:
                out[target] = (int(number), ping, tcp)
        return out

    def last_round(self) -> int:
        return max((int(m.group(1)) for m in _PROBE_RE.finditer(self.text())), default=0)


def _add_probe_cmdline(hv, desktop: Desktop, extra: str) -> None:
    """Test tooling: append the probe's targets to the defined domain's kernel command line."""

    def edit(conn) -> None:
        dom = conn.lookupByName(desktop.domain_name)
        root = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
        cmdline = root.find("os/cmdline")
        cmdline.text = f"{cmdline.text} {extra}"
        conn.defineXML(etree.tostring(root, encoding="unicode"))

    hv.connection.run(edit)


def _port_isolation(hv, desktop: Desktop) -> str | None:
    """The running domain's <port isolated> value."""
    xml = hv.connection.run(lambda conn: conn.lookupByName(desktop.domain_name).XMLDesc(0))
    port = etree.fromstring(xml.encode()).find("devices/interface/port")
    return None if port is None else port.get("isolated")


def _reports(guests: list[Guest], after: dict[int, int], targets: list[str]) -> dict[tuple[str, str], tuple[str, str]]:
    """(source, target) -> (ping, tcp), once every guest has reported on every target after its round `after`."""
    matrix = {}
    for guest in guests:
        seen = guest.results(after[guest.desktop.pk])
        for target in targets:
            if target == guest.ip:
                continue
            if target not in seen:
                return {}
            matrix[(guest.ip, target)] = seen[target][1:]
    return matrix


def _wait_reports(guests: list[Guest], targets: list[str], timeout_s: float = 240) -> dict:
    """Fresh reports: from rounds each guest started after now (so nothing predates a change)."""
    after = {g.desktop.pk: g.last_round() for g in guests}

    def fresh() -> dict:
        return _reports(guests, after, targets)

    return wait_until(fresh, timeout_s, 1.0, explain=lambda: "\n".join(g.text()[-1500:] for g in guests))


def test_it_isolates_tenants_and_desktops_and_applies_rules_live(
    alice, bob, demo_template, qemu_host, private_range, eager
):
    hv = get_hypervisor(qemu_host.uri)
    desktops: list[Desktop] = []
    try:
        # Given two desktops of alice and one of bob, provisioned (not started) through the product path
        for world, name in ((alice, "a1"), (alice, "a2"), (bob, "b1")):
            desktop, _ = request_create(
                tenant=world.tenant, user=world.member, template=demo_template, name=name, start=False
            )
            desktops.append(desktop)
            assert Desktop.objects.get(pk=desktop.pk).state == DesktopState.STOPPED
        a1, a2, b1 = (Guest(Desktop.objects.get(pk=d.pk)) for d in desktops)
        # Then each tenant has its own network on the host, with a subnet from the range and a lease per desktop
        assert a1.lease.network_id == a2.lease.network_id != b1.lease.network_id
        network_a, network_b = a1.lease.network, b1.lease.network
        assert network_a.bridge != network_b.bridge and network_a.subnet != network_b.subnet
        leases = hv.network_dhcp_hosts(network_a.name)
        assert leases is not None and {(h.mac, h.ip) for h in leases} == {
            (a1.lease.mac, a1.ip),
            (a2.lease.mac, a2.ip),
        }
        assert all(hv.nwfilter_exists(g.lease.filter_name) for g in (a1, a2, b1))

        guests = [a1, a2, b1]
        targets = [f"{g.ip}:{GUEST_PORT}" for g in guests] + [f"{a1.gateway}:{DNS_PORT}", f"{b1.gateway}:{DNS_PORT}"]
        ips = [t.split(":")[0] for t in targets]
        for guest in guests:
            # a1 also routes its neighbours through the gateway: the way around port isolation
            extra = f"quetzal.probe={','.join(targets)}" + (" quetzal.probe_route=1" if guest is a1 else "")
            _add_probe_cmdline(hv, guest.desktop, extra)
        # When they boot
        for guest in guests:
            operation = request_action(desktop=guest.desktop, kind="start", actor=None)
            operation.refresh_from_db()
            assert Desktop.objects.get(pk=guest.desktop.pk).state == DesktopState.RUNNING, operation.error
        assert all(_port_isolation(hv, g.desktop) == "yes" for g in guests)
        # Then DHCP gave each exactly the address Quetzal recorded
        for guest in guests:
            # Minutes, not seconds: under TCG on a machine shared by many test runs a boot can crawl.
            wait_until(lambda g=guest: f"{NET_BANNER} eth0 " in g.text(), 300, 1.0, explain=guest.text)
            assert f"{NET_BANNER} eth0 {guest.ip}" in guest.text()
        assert "routes" in a1.text() and f"{a2.ip} via {a1.gateway}" in a1.text()

        # And once all three are up, nobody reaches a neighbour or the other tenant, and each its own gateway
        wait_until(lambda: all(g.last_round() >= 1 for g in guests), 120, 1.0)
        matrix = _wait_reports(guests, ips)
        for guest in guests:
            for other in guests:
                if other is not guest:
                    assert matrix[(guest.ip, other.ip)] == ("no", "no"), (guest.ip, other.ip, matrix)
            assert matrix[(guest.ip, guest.gateway)] == ("ok", "ok"), (guest.ip, matrix)
            foreign = b1.gateway if guest.gateway == a1.gateway else a1.gateway
            assert matrix[(guest.ip, foreign)] == ("no", "no"), (guest.ip, foreign, matrix)

        # When alice's admin denies ICMP to the gateway for a1 alone, live
        rule = firewall.create_rule(
            tenant=alice.tenant,
            actor=alice.admin,
            desktop=a1.desktop,
            values={"action": "deny", "cidr": f"{a1.gateway}/32", "protocol": "icmp"},
        )
        matrix = _wait_reports(guests, [a1.gateway, b1.gateway])
        # Then a1 loses its gateway's ping (DNS stays), and a2 and b1 are untouched
        assert matrix[(a1.ip, a1.gateway)] == ("no", "ok"), matrix
        assert matrix[(a2.ip, a2.gateway)] == ("ok", "ok"), matrix
        assert matrix[(b1.ip, b1.gateway)] == ("ok", "ok"), matrix

        # When the rule goes again, then the ping comes back without a reboot
        firewall.delete_rule(rule=rule, actor=alice.admin)
        matrix = _wait_reports(guests, [a1.gateway])
        assert matrix[(a1.ip, a1.gateway)] == ("ok", "ok"), matrix
        assert matrix[(a2.ip, a2.gateway)] == ("ok", "ok"), matrix

        # When alice's policy lets her desktops meet, live (port isolation off, filter accepts her subnet)
        firewall.set_network_policy(
            tenant=alice.tenant, actor=alice.owner, egress_policy="allow_all", allow_intra_tenant_traffic=True
        )
        assert _port_isolation(hv, a1.desktop) == "no" and _port_isolation(hv, b1.desktop) == "yes"
        matrix = _wait_reports(guests, [a1.ip, a2.ip, b1.ip])
        # Then a1 and a2 reach each other (so "no" above was the enforcement, not a dead probe), bob stays out
        assert matrix[(a1.ip, a2.ip)] == ("ok", "ok"), matrix
        assert matrix[(a2.ip, a1.ip)] == ("ok", "ok"), matrix
        for source, target in ((a1.ip, b1.ip), (a2.ip, b1.ip), (b1.ip, a1.ip), (b1.ip, a2.ip)):
            assert matrix[(source, target)] == ("no", "no"), (source, target, matrix)
    finally:
        for desktop in desktops:
            execution.remove_from_host(Desktop.objects.get(pk=desktop.pk), release=True)
    # And with the last desktops gone, their networks and filters are gone from the host
    for guest in (a1, a2, b1):
        assert hv.network_dhcp_hosts(guest.lease.network.name) is None
        assert not hv.nwfilter_exists(guest.lease.filter_name)
