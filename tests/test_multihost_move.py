"""A desktop on its tenant's network with an encrypted disk, moved live between two real namespace hosts.

The guest runs the demo image's reachability probe against its gateway, so the serial console on each host
shows whether it still reaches the network, with which address, after the move. Operations run through
Celery's task code in eager mode.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from lxml import etree

from desktops.choices import DesktopState, OperationStatus
from desktops.models import DataKey, Desktop, DesktopTemplate
from desktops.services import spec
from desktops.services.moves import request_move
from desktops.services.requests import request_action, request_create
from hosts.demo_image import NET_BANNER, PROBE_BANNER
from hosts.hypervisor import get_hypervisor
from hosts.hypervisor.libvirt_driver import forget_hypervisors
from hosts.models import Host, TenantNetwork
from hosts.services import health, images
from hosts.services.enrolment import enrol_host
from hosts.services.hosts import set_mode
from hosts.services.networks import lease_of
from tests.namespace_hosts import NamespaceHost, namespace_hosts  # noqa: F401  (fixture)
from tests.waiting import wait_until

pytestmark = [pytest.mark.multihost, pytest.mark.qemu, pytest.mark.django_db(transaction=True)]

_PROBE_RE = re.compile(re.escape(PROBE_BANNER) + r" (\d+) ([\d.]+) ([\d.]+) ping=(ok|no) tcp=(ok|no)")
DNS_PORT = 53


@pytest.fixture
def eager_tasks():
    from quetzal.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


def _serial(ns: NamespaceHost, desktop: Desktop) -> str:
    """The guest's serial console as this host's QEMU wrote it (the log lives in the host's private /var/log)."""
    relative = Path(spec.serial_log_path(desktop)).relative_to("/var/log/libvirt")
    try:
        return (ns.root / "log" / relative).read_bytes().decode(errors="replace")
    except FileNotFoundError:
        return ""


def _probes(text: str) -> list[tuple[str, str, str, str]]:
    """(my address, target, ping, tcp) of every probe report, oldest first."""
    return [(me, target, ping, tcp) for _n, me, target, ping, tcp in _PROBE_RE.findall(text)]


def _add_probe(hv, desktop: Desktop, target: str) -> None:
    """Test tooling: make the guest probe `target` round after round (kernel command line of the defined domain)."""

    def edit(conn) -> None:
        dom = conn.lookupByName(desktop.domain_name)
        root = etree.fromstring(dom.XMLDesc(2).encode())  # VIR_DOMAIN_XML_INACTIVE
        cmdline = root.find("os/cmdline")
        cmdline.text = f"{cmdline.text} quetzal.probe={target}"
        conn.defineXML(etree.tostring(root, encoding="unicode"))

    hv.connection.run(edit)


def _agent_probe(hv, desktop: Desktop, gateway: str) -> tuple[str, str, str]:
    """(my address, ping, tcp) of one probe of the gateway run in the guest through qemu-guest-agent."""
    script = (
        "me=$(ip -4 addr show dev eth0 | sed -n 's/.*inet \\([0-9.]*\\).*/\\1/p'); "
        f"if ping -c 1 -W 2 {gateway} >/dev/null 2>&1; then p=ok; else p=no; fi; "
        f"if nc -w 2 {gateway} {DNS_PORT} </dev/null >/dev/null 2>&1; then c=ok; else c=no; fi; "
        'echo "$me $p $c"'
    )
    try:
        started = hv.agent_command(
            desktop.domain_name,
            {"execute": "guest-exec", "arguments": {"path": "/bin/sh", "arg": ["-c", script], "capture-output": True}},
            5,
        )
        pid = started["pid"]
        for _ in range(40):
            asked = {"execute": "guest-exec-status", "arguments": {"pid": pid}}
            status = hv.agent_command(desktop.domain_name, asked, 5)
            if status.get("exited"):
                out = base64.b64decode(status.get("out-data", "") or "").decode(errors="replace").split()
                me, ping, tcp = [*out, "", "", ""][:3]
                return me, ping, tcp
            time.sleep(0.25)
    except Exception as exc:  # a diagnostic probe: any failure is "no answer"
        return ("", "agent:" + type(exc).__name__, str(exc)[:100])
    return ("", "agent:timeout", "")


def _reaches_gateway(hv, ns: NamespaceHost, desktop: Desktop, ip: str, gateway: str) -> bool:
    if (ip, gateway, "ok", "ok") in _probes(_serial(ns, desktop)):
        return True
    return _agent_probe(hv, desktop, gateway) == (ip, "ok", "ok")


def _after_move_state(hv, ns: NamespaceHost, desktop: Desktop, gateway: str) -> str:
    """What the host and the guest say when the guest does not reach its gateway after the move."""
    path = ns.root / "log" / Path(spec.serial_log_path(desktop)).relative_to("/var/log/libvirt")
    states = {d.desktop_id: str(d.state) for d in hv.list_domains()}
    return (
        f"serial file exists={path.exists()} bytes={path.stat().st_size if path.exists() else 0}; "
        f"domain state={states.get(desktop.pk)}; agent probe={_agent_probe(hv, desktop, gateway)}; "
        f"serial tail={_serial(ns, desktop)[-1200:]!r}"
    )


def _luks(ns: NamespaceHost, path: str) -> dict:
    """qemu-img's view of a disk file on that host (no key needed for the header)."""
    return json.loads(ns.nsenter("qemu-img", "info", "-U", "--output=json", path).stdout)


def _heartbeat(hosts: list[Host]) -> None:
    for host in hosts:
        health.heartbeat(host_id=host.pk)


def test_it_moves_a_desktop_with_its_network_and_encrypted_disk_live(
    namespace_hosts,  # noqa: F811
    alice,
    bob,
    settings,
    tmp_path,
    eager_tasks,
):
    settings.HOST_PKI_DIR = str(tmp_path / "pki")
    settings.DESKTOP_SERIAL_LOG_DIR = "/var/log/libvirt/qemu"
    first_ns, second_ns = namespace_hosts[:2]
    # qemu-img reaches each host's disks through its namespaces, as it would through ssh on a remote host.
    settings.HOST_SHELLS = {ns.uri: ns.shell for ns in (first_ns, second_ns)}
    forget_hypervisors()
    first, second = (enrol_host(ns.uri, virt_type="qemu", reserved_memory_mib=256)[0] for ns in (first_ns, second_ns))
    call_command("build_demo_image", "--no-copy", stdout=io.StringIO())
    template = DesktopTemplate.objects.get(name="Demo Linux")
    for host in (first, second):
        images.copy_image_to_host(image=template.image, host=host)
    hv1, hv2 = get_hypervisor(first.uri), get_hypervisor(second.uri)
    try:
        # Given bob's desktop on the second host (so the lowest subnet there is bob's) ...
        set_mode(host=first, mode="drain")
        _heartbeat([first, second])
        bobs, _ = request_create(tenant=bob.tenant, user=bob.member, template=template, start=False)
        assert Desktop.objects.get(pk=bobs.pk).host_id == second.pk
        bob_subnet = lease_of(bobs.pk).network.subnet
        # ... and alice's on the first, with an encrypted disk and a NIC on her own network there
        set_mode(host=first, mode="active")
        set_mode(host=second, mode="drain")
        _heartbeat([first, second])
        desktop, _ = request_create(tenant=alice.tenant, user=alice.member, template=template, start=False)
        desktop = Desktop.objects.get(pk=desktop.pk)
        assert desktop.host_id == first.pk and desktop.disk_encrypted
        before = lease_of(desktop.pk)
        assert before.network.host_id == first.pk and before.network.subnet != bob_subnet
        old_network, old_filter = before.network.name, before.filter_name
        _add_probe(hv1, desktop, f"{before.network.gateway}:{DNS_PORT}")
        set_mode(host=second, mode="active")
        operation = request_action(desktop=desktop, kind="start", actor=None)
        operation.refresh_from_db()
        assert Desktop.objects.get(pk=desktop.pk).state == DesktopState.RUNNING, operation.error
        # And it got its address by DHCP and reaches its gateway (DNS answers there) through its filter
        wait_until(lambda: f"{NET_BANNER} eth0 {before.ip}" in _serial(first_ns, desktop), 300, 1.0)
        wait_until(
            lambda: (before.ip, before.network.gateway, "ok", "ok") in _probes(_serial(first_ns, desktop)),
            180,
            1.0,
            explain=lambda: _serial(first_ns, desktop)[-1500:],
        )
        disk = f"/var/lib/libvirt/images/{spec.disk_volume_name(desktop)}"
        assert _luks(first_ns, disk)["encrypted"]
        assert first_ns.secrets() == []

        # When it is moved live to the second host
        _heartbeat([first, second])
        move = request_move(desktop=desktop, actor=alice.admin, host=second)
        move.refresh_from_db()
        # Then it runs there, defined there only, never stopped on the way
        assert move.status == OperationStatus.SUCCEEDED, move.error
        desktop.refresh_from_db()
        assert desktop.host_id == second.pk and desktop.state == DesktopState.RUNNING
        assert [d.desktop_id for d in hv2.list_domains() if str(d.state) == "running"] == [desktop.pk]
        assert desktop.pk not in [d.desktop_id for d in hv1.list_domains()]
        # And its disk there is still a LUKS overlay under the same key, and the old one is gone
        info = _luks(second_ns, disk)
        assert info["encrypted"] and info["format-specific"]["data"]["encrypt"]["format"] == "luks"
        assert not (first_ns.root / "lib" / "images" / spec.disk_volume_name(desktop)).exists()
        assert DataKey.objects.get(desktop=desktop).host_id == second.pk
        # And no libvirt secret is left on either host: the key was there only while QEMU started
        assert first_ns.secrets() == [] and second_ns.secrets() == []
        # And its lease now names alice's network on the second host, with the same MAC, subnet and address
        after = lease_of(desktop.pk)
        assert after.network.host_id == second.pk and after.network.tenant_id == alice.tenant.pk
        assert (after.mac, after.ip, after.network.subnet) == (before.mac, before.ip, before.network.subnet)
        assert after.moving_to_id is None
        # And the second host has that network with the desktop's static DHCP entry, and its filter
        leases = hv2.network_dhcp_hosts(after.network.name)
        assert leases is not None and (after.mac, after.ip) in {(h.mac, h.ip) for h in leases}
        assert hv2.nwfilter_exists(after.filter_name)
        assert after.filter_name in second_ns.names("nwfilter-list")
        # And the first host has neither its filter nor alice's network (it was her last desktop there)
        assert old_filter not in first_ns.names("nwfilter-list")
        assert old_network not in first_ns.names("net-list")
        assert not TenantNetwork.objects.filter(tenant=alice.tenant, host=first).exists()
        # And the guest, on the new host's network, still reaches its gateway with the address it had
        # (seen by its serial probes, or, where the serial port went quiet after the move, by asking the guest agent)
        wait_until(
            lambda: _reaches_gateway(hv2, second_ns, desktop, before.ip, after.network.gateway),
            180,
            2.0,
            explain=lambda: _after_move_state(hv2, second_ns, desktop, after.network.gateway),
        )
        assert {me for me, *_ in _probes(_serial(second_ns, desktop))} <= {before.ip}
    finally:
        for ns in (first_ns, second_ns):
            ns.reset()
        forget_hypervisors()
