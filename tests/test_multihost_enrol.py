"""enrol_host against real libvirtd hosts in namespaces: over qemu+tcp and qemu+tls, and what it names as missing."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from hosts.models import Host
from hosts.services import enrolment
from hosts.services.hosts import residents, set_mode
from tests.namespace_hosts import namespace_hosts  # noqa: F401  (fixture)

pytestmark = [pytest.mark.multihost, pytest.mark.django_db]


def _enrol(*argv: str) -> str:
    out = io.StringIO()
    call_command("enrol_host", *argv, stdout=out)
    return out.getvalue()


def test_it_enrols_three_hosts_over_tcp_and_reports_each_check(namespace_hosts, settings, tmp_path):  # noqa: F811
    settings.HOST_PKI_DIR = str(tmp_path / "pki")
    # When each namespace host is enrolled by its URI
    outputs = [_enrol(h.uri, "--virt-type", "qemu", "--reserved-memory-mib", "256") for h in namespace_hosts]
    # Then all three are registered, up, named by their own hostnames, with every check passed
    hosts = list(Host.objects.order_by("name"))
    assert [h.name for h in hosts] == ["nshost1", "nshost2", "nshost3"]
    assert {h.state for h in hosts} == {"up"}
    assert [h.console_address for h in hosts] == [h.address for h in namespace_hosts]
    for output in outputs:
        for item in ("reachable", "virtualisation", "storage pool", "free disk"):
            assert f"ok   {item}:" in output, output
        assert "unencrypted" in output  # the tcp transport is flagged as private-wire only


def test_it_names_a_missing_storage_pool_and_saves_nothing(namespace_hosts, settings, tmp_path):  # noqa: F811
    settings.HOST_PKI_DIR = str(tmp_path / "pki")
    host = namespace_hosts[0]
    # When a host is enrolled with a pool it does not have
    with pytest.raises(CommandError) as error:
        _enrol(host.uri, "--storage-pool", "nosuchpool")
    # Then the error names the missing pool and how to make it, and no host row exists
    assert "storage pool: no pool named 'nosuchpool'" in str(error.value)
    assert "virsh pool-define-as nosuchpool" in str(error.value)
    assert "[host_not_ready]" in str(error.value)
    assert not Host.objects.exists()


def test_it_names_an_unreachable_host(settings, tmp_path, namespace_hosts):  # noqa: F811
    settings.HOST_PKI_DIR = str(tmp_path / "pki")
    host = namespace_hosts[1]
    # Given a host whose libvirtd is down
    host.kill_libvirtd()
    try:
        # When it is checked, the check says it cannot be reached, and nothing else is claimed
        check = enrolment.check_host(host.uri)
    finally:
        host.start_libvirtd()
    assert not check.ready
    assert [f.item for f in check.findings] == ["reachable"]
    assert "Cannot reach libvirt" in check.findings[0].detail


def test_it_enrols_over_tls_with_a_ca_and_certificates_it_made(namespace_hosts, settings, tmp_path):  # noqa: F811
    settings.HOST_PKI_DIR = str(tmp_path / "pki")
    host = namespace_hosts[2]
    tls_uri = f"qemu+tls://{host.address}/system"
    # Given the keys enrol_host makes for a TLS host, installed on the host as its steps say
    output = _enrol(tls_uri, "--prepare-only")
    assert "/etc/pki/libvirt/servercert.pem" in output
    bundle = tmp_path / "pki" / "servers" / host.address
    host.enable_tls(bundle)
    # When the host is enrolled over TLS
    output = _enrol(tls_uri, "--virt-type", "qemu", "--name", "tls-host")
    # Then it is registered with a URI carrying Quetzal's client certificates, and answers over it
    registered = Host.objects.get(name="tls-host")
    assert registered.uri.startswith(tls_uri + "?pkipath=")
    assert registered.state == "up" and "Enrolled host tls-host" in output
    # And a client without those certificates is refused by the host
    check = enrolment.check_host(tls_uri + f"?pkipath={tmp_path / 'empty'}")
    assert not check.ready and check.findings[0].item == "reachable"


def test_it_makes_an_ssh_key_once_and_points_the_uri_at_it(settings, tmp_path):
    settings.HOST_PKI_DIR = str(tmp_path / "pki")
    # When two ssh hosts are prepared
    first = enrolment.prepare("qemu+ssh://root@host-a.example/system")
    second = enrolment.prepare("qemu+ssh://admin@host-b.example/system")
    # Then one key serves both, the URIs point at it without prompting, and the steps install it
    key = tmp_path / "pki" / "ssh" / "id_ed25519"
    assert key.exists() and (key.parent / "id_ed25519.pub").exists()
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert first.uri == f"qemu+ssh://root@host-a.example/system?keyfile={key}&no_tty=1"
    assert second.steps == [f"ssh-copy-id -i {key}.pub admin@host-b.example"]


def test_it_drains_a_host_and_reports_what_still_runs(namespace_hosts, settings, tmp_path):  # noqa: F811
    settings.HOST_PKI_DIR = str(tmp_path / "pki")
    host, _ = enrolment.enrol_host(namespace_hosts[0].uri, virt_type="qemu")
    # When the host is drained
    assert set_mode(host=host, mode="drain")
    host.refresh_from_db()
    # Then it takes no new desktops, and the report (from the host itself) lists none left
    assert host.drain and not host.accepts_desktops
    report = residents(host=host)
    assert (report.mode, report.desktops, report.unreachable) == ("drain", [], "")
    # When it goes to maintenance, drain is lifted and maintenance set; active clears both
    set_mode(host=host, mode="maintenance")
    host.refresh_from_db()
    assert (host.drain, host.maintenance) == (False, True)
    set_mode(host=host, mode="active")
    host.refresh_from_db()
    assert host.accepts_desktops
