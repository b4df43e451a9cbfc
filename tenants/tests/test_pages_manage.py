"""Members, policies and the audit log as tenant admin (manage) pages."""

from __future__ import annotations

import re
from datetime import timedelta

from django.utils import timezone

from tenants.forms import PoliciesForm
from tenants.models import AuditEvent
from tenants.views.pages import PoliciesView
from tests.fixtures import login_client


def test_it_puts_members_policies_and_audit_in_the_manage_sidebar(alice):
    client = login_client(alice.admin, alice.tenant)
    for path in ("/manage/members/", "/manage/policies/", "/manage/audit/"):
        page = client.get(path).content.decode()
        assert 'class="manage-nav"' in page
        assert f'href="{path}" aria-current="page"' in page
        for link in ("/manage/", "/manage/pools/", "/manage/templates/", "/console/sessions/"):
            assert f'href="{link}"' in page


def test_it_shows_every_policy_in_one_of_the_groups():
    grouped = [name for _, names in PoliciesView.groups for name in names]
    assert sorted(grouped) == sorted(PoliciesForm.Meta.fields) and len(grouped) == len(set(grouped))


def test_it_saves_policies_from_the_page_and_audits_them(alice):
    client = login_client(alice.admin, alice.tenant)
    data = {field: value for field, value in PoliciesForm(instance=alice.tenant).initial.items() if value is not False}
    data.update(max_running_per_user=1, idle_action="hibernate")
    response = client.post("/manage/policies/", data)
    assert response.status_code == 302
    alice.tenant.refresh_from_db()
    assert (alice.tenant.max_running_per_user, alice.tenant.idle_action) == (1, "hibernate")
    event = AuditEvent.objects.get(action="tenant.policies")
    assert event.data["after"] == {"max_running_per_user": 1, "idle_action": "hibernate"}


def test_it_filters_the_audit_log_by_kind_person_and_dates(alice, bob):
    old = timezone.now() - timedelta(days=10)
    for action in ("console.open", "console.close", "desktop.start", "member.role"):
        AuditEvent.objects.create(tenant=alice.tenant, actor=alice.member, action=action)
    AuditEvent.objects.create(tenant=alice.tenant, actor=alice.admin, action="console.open", created_at=old)
    AuditEvent.objects.create(tenant=bob.tenant, actor=bob.member, action="console.open")
    client = login_client(alice.admin, alice.tenant)

    def actions(query: str) -> list[str]:
        page = client.get(f"/manage/audit/{query}").content.decode()
        return re.findall(r'data-audit-action="([\w.]+)"', page)

    assert actions("?category=console") == ["console.close", "console.open", "console.open"]
    assert actions("?category=console&actor=member@") == ["console.close", "console.open"]
    since = (timezone.now() - timedelta(days=2)).date().isoformat()
    assert actions(f"?category=console&since={since}") == ["console.close", "console.open"]
    assert actions(f"?until={(old + timedelta(days=1)).date().isoformat()}") == ["console.open"]
    assert actions("?category=people") == ["member.role"]
    # Filters that make no sense are ignored rather than failing
    assert len(actions("?category=nonsense&since=yesterday")) == 5
