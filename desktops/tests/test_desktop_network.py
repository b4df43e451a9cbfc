"""A launched desktop sits on its tenant's network, isolated, with its own filter; the API and pages say where."""

from __future__ import annotations

from django.urls import reverse
from lxml import etree

from desktops.models import Desktop, FirewallRule
from desktops.services import network
from desktops.tests.factories import DesktopFactory
from hosts.hypervisor import get_hypervisor
from hosts.models import NetworkLease, TenantNetwork
from tests.fixtures import api_client, login_client


def _launch(world, template, work) -> Desktop:
    with work():
        response = api_client(world.member, world.tenant).post(
            "/api/desktop/start", {"template": template.pk}, format="json"
        )
    assert response.status_code == 202, response.content
    return Desktop.objects.get(pk=response.json()["desktop"]["id"])


def _interface(host, desktop: Desktop) -> etree._Element:
    xml = get_hypervisor(host.uri).connection.run(lambda conn: conn.lookupByName(desktop.domain_name).XMLDesc(0))
    return etree.fromstring(xml.encode()).find("devices/interface")


def test_it_puts_a_launched_desktop_on_its_tenants_network_and_takes_it_away_on_delete(
    alice, bob, host, template, work
):
    # Given a desktop of alice and one of bob launched on the same host
    mine, theirs = _launch(alice, template, work), _launch(bob, template, work)
    lease = NetworkLease.objects.select_related("network").get(desktop_id=mine.pk)
    # Then its NIC is on alice's network, with the leased MAC, an isolated port and its own filter
    iface = _interface(host, mine)
    assert iface.find("source").get("network") == lease.network.name
    assert iface.find("mac").get("address") == lease.mac
    assert iface.find("port").get("isolated") == "yes"
    assert iface.find("filterref").get("filter") == lease.filter_name
    assert _interface(host, theirs).find("source").get("network") != lease.network.name
    # And the API says which network and address
    shown = api_client(alice.member, alice.tenant).get(reverse("api:desktop-detail", args=[mine.pk])).json()
    assert shown["network"] == {
        "network": lease.network.name,
        "subnet": lease.network.subnet,
        "gateway": lease.network.gateway,
        "ip": lease.ip,
        "mac": lease.mac,
    }
    # When it is deleted, then its lease goes, and with its last desktop alice's network goes from the host
    with work():
        api_client(alice.member, alice.tenant).delete(reverse("api:desktop-detail", args=[mine.pk]))
    assert not NetworkLease.objects.filter(desktop_id=mine.pk).exists()
    assert not TenantNetwork.objects.filter(tenant=alice.tenant).exists()
    assert get_hypervisor(host.uri).network_dhcp_hosts(lease.network.name) is None
    assert TenantNetwork.objects.filter(tenant=bob.tenant).exists()


def test_it_gives_no_nic_when_tenant_networks_are_off(alice, host, template, work, settings):
    settings.TENANT_NETWORKS = False
    desktop = _launch(alice, template, work)
    assert _interface(host, desktop) is None
    assert network.address(desktop) is None and not TenantNetwork.objects.exists()


def test_it_skips_filters_only_where_the_host_cannot_filter(alice, host, template, work):
    # libvirt's test driver has no nwfilter driver: the capability says so and nothing is mocked
    assert get_hypervisor(host.uri).supports_nwfilter is False
    desktop = _launch(alice, template, work)
    assert desktop.state == "running" or Desktop.objects.get(pk=desktop.pk).state == "running"
    assert network.reapply([desktop.pk]) == 0


# --- the admin console ----------------------------------------------------------------------------


def test_it_shows_addresses_and_rules_and_adds_rules_in_the_admin_console(alice, bob, host, template, work):
    desktop = _launch(alice, template, work)
    lease = NetworkLease.objects.get(desktop_id=desktop.pk)
    page = login_client(alice.admin, alice.tenant)
    # The desktops list and the network page show each desktop's address
    assert lease.ip in page.get(reverse("manage:desktops")).content.decode()
    assert lease.ip in page.get(reverse("manage:network")).content.decode()
    # The desktop's firewall page adds a rule, and shows it in force before the policy
    url = reverse("manage:desktop-firewall", args=[desktop.pk])
    added = page.post(url, {"op": "add", "cidr": "192.0.2.0/24", "protocol": "tcp", "port_start": "22"})
    assert added.status_code == 400  # no allow/deny chosen: the form says so, nothing is saved
    assert not FirewallRule.objects.exists()
    form = {"action": "deny", "cidr": "192.0.2.0/24", "protocol": "tcp", "port_start": "22"}
    assert page.post(url, form).status_code == 302
    rule = FirewallRule.objects.get()
    assert (rule.desktop_id, rule.action, rule.port_start) == (desktop.pk, "deny", 22)
    shown = page.get(url).content.decode()
    assert lease.ip in shown and "192.0.2.0/24" in shown and 'data-testid="effective-rules"' in shown
    # A bad CIDR is a 400 with the field's error on the page
    bad = page.post(url, {**form, "cidr": "192.0.2.1/24"})
    assert bad.status_code == 400 and "IPv4 network" in bad.content.decode()
    # The tenant's page changes the policy
    assert page.post(reverse("manage:network"), {"op": "policy", "egress_policy": "deny_all"}).status_code == 302
    alice.tenant.refresh_from_db()
    assert alice.tenant.egress_policy == "deny_all"
    # Members may not; another tenant's desktop is a 404; removing works
    assert login_client(alice.member, alice.tenant).get(url).status_code == 403
    assert login_client(bob.admin, bob.tenant).get(url).status_code == 404
    assert page.post(url, {"op": "delete", "rule": str(rule.pk)}).status_code == 302
    assert not FirewallRule.objects.exists()


def test_it_shows_a_templates_rules_page(alice, template):
    DesktopFactory(world=alice, template=template)
    page = login_client(alice.admin, alice.tenant)
    url = reverse("manage:template-firewall", args=[template.pk])
    assert page.post(url, {"action": "allow", "cidr": "0.0.0.0/0", "protocol": "any"}).status_code == 302
    assert FirewallRule.objects.get().template_id == template.pk
    assert template.name in page.get(url).content.decode()


def test_it_builds_a_desktops_filter_from_its_rules_and_its_tenants_policy(alice, bob, host, template):
    from hosts.services import networks

    # Given a desktop on its tenant's network, with a rule of its own, one of its template's, one of the tenant's,
    # and a rule of another tenant's that must not reach it
    desktop = DesktopFactory(world=alice, template=template, host=host)
    lease = networks.attach_desktop(tenant=alice.tenant, host=host, desktop_id=desktop.pk)
    rules = alice.tenant.firewall_rules
    rules.create(action="deny", cidr="198.51.100.0/24", protocol="any")
    rules.create(template=template, action="allow", cidr="192.0.2.0/24", protocol="tcp", port_start=80, port_end=443)
    rules.create(desktop=desktop, action="deny", cidr="203.0.113.5/32", protocol="udp", port_start=53)
    bob.tenant.firewall_rules.create(action="allow", cidr="0.0.0.0/0")
    # When its tenant denies what no rule allows and keeps its desktops apart
    alice.tenant.egress_policy, alice.tenant.allow_intra_tenant_traffic = "deny_all", False
    alice.tenant.save()
    spec = network.filter_spec(Desktop.objects.get(pk=desktop.pk), lease)
    # Then it is the desktop's own filter, its rules most specific first, then the default drop
    assert spec.name == lease.filter_name
    tail = [(r.action, r.protocol, r.dst, r.dst_ports) for r in spec.rules if r.priority >= 200]
    assert tail == [
        ("drop", "udp", "203.0.113.5/32", (53, 53)),
        ("accept", "tcp", "192.0.2.0/24", (80, 443)),
        ("drop", "all", "198.51.100.0/24", None),
        ("drop", "all", None, None),
        ("drop", "all", None, None),
    ]
    assert not any(r.action == "accept" and r.dst == lease.network.subnet for r in spec.rules)
    # And when the tenant allows all outbound traffic and lets its desktops meet, the filter says so
    alice.tenant.egress_policy, alice.tenant.allow_intra_tenant_traffic = "allow_all", True
    alice.tenant.save()
    opened = network.filter_spec(Desktop.objects.get(pk=desktop.pk), lease)
    assert [(r.action, r.direction) for r in opened.rules if r.priority == 995] == [("accept", "out")]
    assert any(r.action == "accept" and r.dst == lease.network.subnet for r in opened.rules)
