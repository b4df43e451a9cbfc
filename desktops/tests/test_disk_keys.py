"""Disk and recording keys on PostgreSQL: spares claimed once, secrets at start, crypto-erase, KEK rotation."""

from __future__ import annotations

import base64
import os
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from desktops.choices import DesktopKind, DesktopState
from desktops.models import DataKey, Desktop
from desktops.services import disk_keys, execution
from desktops.tests.factories import DataKeyFactory, DesktopFactory
from hosts.services.images import DiskPlan, desktop_disk_plan
from quetzal import kek
from tenants.models import AuditEvent
from tenants.sso import services as sso


def _plan(host, template) -> DiskPlan:
    return desktop_disk_plan(host=host, image=template.image, capacity_bytes=template.disk_gib * 1024**3)


def _spare(host, template, n: int = 0, **fields) -> DataKey:
    """A spare key row as the refill leaves it (the file itself only exists on a real qemu host)."""
    plan = _plan(host, template)
    values = {"spare_backing_path": plan.backing_path, "spare_capacity_bytes": plan.capacity_bytes} | fields
    return DataKeyFactory(host=host, spare_path=f"/var/lib/libvirt/images/quetzal-spare-{n}.qcow2", **values)


def test_it_gives_each_desktop_its_own_spare_and_reuses_it_on_a_retry(alice, bob, host, template):
    # Given two spares for the template on the host (and one for another size), and desktops of two tenants
    first, second = _spare(host, template, 1), _spare(host, template, 2)
    _spare(host, template, 3, spare_capacity_bytes=1)
    mine = DesktopFactory(world=alice, template=template, state=DesktopState.PROVISIONING)
    theirs = DesktopFactory(world=bob, template=template, state=DesktopState.PROVISIONING)
    # When each is provisioned
    plan = _plan(host, template)
    key, spare_path = disk_keys.claim_for(desktop=mine, host=host, plan=plan)
    other, other_path = disk_keys.claim_for(desktop=theirs, host=host, plan=plan)
    # Then each took a different spare, now owned by its desktop and tenant
    assert (key.pk, spare_path) == (first.pk, first.spare_path)
    assert (other.pk, other_path) == (second.pk, second.spare_path)
    assert DataKey.objects.get(pk=first.pk).tenant_id == alice.tenant.pk
    assert DataKey.objects.get(pk=second.pk).tenant_id == bob.tenant.pk
    # And a retried provisioning finds its own key and spare again, not a third one
    assert disk_keys.claim_for(desktop=mine, host=host, plan=plan) == (key, first.spare_path)
    # When no spare of its size is left, a fresh key is made (its disk is then made during the start)
    third = DesktopFactory(world=alice, template=template, state=DesktopState.PROVISIONING)
    made, made_path = disk_keys.claim_for(desktop=third, host=host, plan=plan)
    assert made_path is None and made.desktop_id == third.pk and made.pk not in (first.pk, second.pk)


@pytest.mark.django_db(transaction=True)
def test_it_never_hands_one_spare_to_two_concurrent_starts(alice, host, template):
    # Given one spare, and a start that has claimed it but not committed yet
    spare = _spare(host, template)
    plan = _plan(host, template)
    one = DesktopFactory(world=alice, template=template, state=DesktopState.PROVISIONING)
    two = DesktopFactory(world=alice, template=template, state=DesktopState.PROVISIONING)
    claimed, release = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def slow_claim() -> None:
        try:
            with transaction.atomic():
                results["one"] = disk_keys.claim_for(desktop=one, host=host, plan=plan)
                claimed.set()
                release.wait(10)
        finally:
            connection.close()

    worker = threading.Thread(target=slow_claim)
    worker.start()
    assert claimed.wait(10)
    # When a second start claims meanwhile
    try:
        results["two"] = disk_keys.claim_for(desktop=two, host=host, plan=plan)
        # ...without waiting for the first start to finish
        second_waited = not worker.is_alive()
    finally:
        release.set()
        worker.join(10)
    assert not second_waited
    # Then it skips the locked spare and gets its own key
    assert results["one"][0].pk == spare.pk  # type: ignore[index]
    assert results["two"][0].pk != spare.pk and results["two"][1] is None  # type: ignore[index]


def test_it_hands_libvirt_the_disks_passphrase_and_refuses_once_the_key_is_gone(alice, host, template):
    desktop = DesktopFactory(world=alice, template=template, disk_encrypted=True)
    key = DataKeyFactory(desktop=desktop, tenant=alice.tenant)
    # The secret is the key's UUID with the unwrapped key as hex text (QEMU wants UTF-8)
    secrets = disk_keys.secrets_for(desktop)
    assert list(secrets) == [str(key.uuid)]
    assert secrets[str(key.uuid)] == kek.passphrase(disk_keys.data_key_of(key))
    # A plain disk (test driver, older desktops) needs no secret
    assert disk_keys.secrets_for(DesktopFactory(world=alice, template=template)) == {}
    # Once erased, an encrypted desktop cannot start any more, and says why
    DataKey.objects.filter(pk=key.pk).delete()
    with pytest.raises(disk_keys.KeyErased):
        disk_keys.secrets_for(desktop)


def test_it_keeps_disks_plain_on_the_test_driver(alice, host, template, work):
    from desktops.services.requests import request_create

    # Given a host that cannot encrypt (libvirt's test driver has no secrets)
    assert not disk_keys.encrypts_disks(host)
    # When a desktop is created there
    with work():
        desktop, _ = request_create(tenant=alice.tenant, user=alice.member, template=template)
    # Then it runs on a plain overlay, without a key
    desktop.refresh_from_db()
    assert desktop.state == DesktopState.RUNNING and not desktop.disk_encrypted
    assert not DataKey.objects.filter(desktop=desktop).exists()


def test_it_destroys_the_key_when_the_desktop_is_deleted(alice, bob, host, template):
    # Given two desktops with keys, one of another tenant
    desktop = DesktopFactory(world=alice, template=template, host=host, state=DesktopState.DELETING)
    key = DataKeyFactory(desktop=desktop, tenant=alice.tenant)
    other = DataKeyFactory(desktop=DesktopFactory(world=bob, template=template), tenant=bob.tenant)
    # When the first is deleted
    execution.finish_delete(desktop)
    # Then its key row is gone, the other tenant's is not, and the tenant's log says so
    assert not DataKey.objects.filter(pk=key.pk).exists()
    assert DataKey.objects.filter(pk=other.pk).exists()
    event = AuditEvent.objects.get(action="desktop.keys_erase")
    assert event.tenant == alice.tenant and event.data == {"desktops": [desktop.pk], "why": "disk removed"}


def test_it_erases_a_deleted_persons_keys_in_every_tenant(alice, bob, host, template):
    # Given a person holding pooled desktops in two tenants, and a colleague's desktop
    # (personal desktops keep a person from being deleted at all: their rows require a user)
    person = alice.member
    bob.tenant.memberships.create(user=person)
    held = [
        DataKeyFactory(desktop=DesktopFactory(tenant=tenant, user=person, kind=DesktopKind.POOLED, template=template))
        for tenant in (alice.tenant, bob.tenant)
    ]
    colleague = DataKeyFactory(desktop=DesktopFactory(world=alice, user=alice.admin, template=template))
    # When the person is deleted
    person.delete()
    # Then their keys are gone in both tenants (each tenant's log says so), and the colleague's key remains
    assert not DataKey.objects.filter(pk__in=[k.pk for k in held]).exists()
    assert DataKey.objects.filter(pk=colleague.pk).exists()
    for tenant in (alice.tenant, bob.tenant):
        assert AuditEvent.objects.get(action="desktop.keys_erase", tenant=tenant).data["why"] == "person deleted"


def test_it_erases_a_deleted_tenants_keys_and_no_one_elses(alice, bob, template):
    DataKeyFactory(desktop=DesktopFactory(world=alice, template=template), tenant=alice.tenant)
    alice_recordings = disk_keys.tenant_recording_key(alice.tenant)
    bob_recordings = disk_keys.tenant_recording_key(bob.tenant)
    bob_disk = DataKeyFactory(desktop=DesktopFactory(world=bob, template=template), tenant=bob.tenant)
    assert alice_recordings != bob_recordings
    assert disk_keys.tenant_recording_key(alice.tenant) == alice_recordings  # one per tenant, kept
    alice.tenant.delete()
    assert not DataKey.objects.filter(tenant_id=alice.tenant.pk).exists()
    assert DataKey.objects.filter(pk=bob_disk.pk).exists()
    assert disk_keys.tenant_recording_key(bob.tenant) == bob_recordings


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_it_rotates_the_kek_without_changing_any_data_key(alice, bob, template, settings, monkeypatch):
    # Given keys of two tenants wrapped under the old KEK
    old, new = os.urandom(32), os.urandom(32)
    settings.QUETZAL_KEK = old
    rows = [
        DataKeyFactory(desktop=DesktopFactory(world=alice, template=template), tenant=alice.tenant),
        DataKeyFactory(desktop=DesktopFactory(world=bob, template=template), tenant=bob.tenant),
    ]
    disk_keys.tenant_recording_key(alice.tenant)
    before = {r.pk: disk_keys.data_key_of(r) for r in DataKey.objects.all()}
    # When the operator configures the new KEK and runs rotate_kek with the old one given
    settings.QUETZAL_KEK = new
    monkeypatch.setenv("QUETZAL_OLD_KEK", _b64(old))
    call_command("rotate_kek", stdout=open(os.devnull, "w"))  # noqa: SIM115
    # Then every row is under the new KEK and opens to the very same data key (disks need nothing)
    assert set(DataKey.objects.values_list("kek_id", flat=True)) == {kek.Kek(new).kek_id}
    assert {r.pk: disk_keys.data_key_of(r) for r in DataKey.objects.all()} == before
    # ...and the old KEK opens nothing any more
    rotated = DataKey.objects.get(pk=rows[0].pk)
    with pytest.raises(kek.UnwrapError):
        kek.unwrap(rotated.wrapped, context=rotated.context, kek_id=kek.Kek(old).kek_id, keks=[kek.Kek(old)])
    event = AuditEvent.objects.get(action="keys.rotate")
    assert event.tenant is None and event.data["keys"] == 3 and event.data["new_kek"] == kek.Kek(new).kek_id
    # And running it again changes nothing
    call_command("rotate_kek", stdout=open(os.devnull, "w"))  # noqa: SIM115
    assert AuditEvent.objects.filter(action="keys.rotate").order_by("pk").last().data["keys"] == 0


def test_it_rotates_the_identity_providers_client_secrets_with_the_data_keys(alice, settings, monkeypatch):
    # Given a single sign-on provider whose client secret was sealed under the old KEK
    old, new = os.urandom(32), os.urandom(32)
    settings.QUETZAL_KEK = old
    provider = sso.save_provider(
        tenant=alice.tenant,
        actor=alice.owner,
        values={"name": "Acme", "issuer_url": "https://id.acme.test", "client_identifier": "c"},
        domains=["acme.test"],
        client_secret="the provider's secret",
    )
    # When the KEK is rotated
    settings.QUETZAL_KEK = new
    monkeypatch.setenv("QUETZAL_OLD_KEK", _b64(old))
    call_command("rotate_kek", stdout=open(os.devnull, "w"))  # noqa: SIM115
    # Then the secret is sealed under the new KEK and still the same secret
    provider.refresh_from_db()
    assert provider.client_secret_kek_id == kek.Kek(new).kek_id
    assert sso.client_secret(provider) == "the provider's secret"
    assert AuditEvent.objects.get(action="keys.rotate").data["keys"] == 1


def test_it_rotates_all_keys_or_none(alice, template, settings, monkeypatch):
    # Given one key under the old KEK and one under a KEK nobody gave (a mistake)
    old, stray, new = os.urandom(32), os.urandom(32), os.urandom(32)
    settings.QUETZAL_KEK = old
    good = DataKeyFactory(desktop=DesktopFactory(world=alice, template=template), tenant=alice.tenant)
    settings.QUETZAL_KEK = stray
    DataKeyFactory(desktop=DesktopFactory(world=alice, template=template), tenant=alice.tenant)
    # When rotation runs with only the old KEK
    settings.QUETZAL_KEK = new
    monkeypatch.setenv("QUETZAL_OLD_KEK", _b64(old))
    with pytest.raises(CommandError, match="nothing changed"):
        call_command("rotate_kek")
    # Then not even the key it could open was changed
    assert DataKey.objects.get(pk=good.pk).kek_id == kek.Kek(old).kek_id


def test_it_refuses_to_rotate_without_the_old_kek_or_to_the_same_one(settings, monkeypatch):
    monkeypatch.delenv("QUETZAL_OLD_KEK", raising=False)
    monkeypatch.delenv("QUETZAL_OLD_KEK_FILE", raising=False)
    with pytest.raises(CommandError, match="QUETZAL_OLD_KEK or QUETZAL_OLD_KEK_FILE must be set"):
        call_command("rotate_kek")
    same = os.urandom(32)
    settings.QUETZAL_KEK = same
    monkeypatch.setenv("QUETZAL_OLD_KEK", _b64(same))
    with pytest.raises(CommandError, match="the same"):
        call_command("rotate_kek")


def test_it_does_not_open_a_wrapped_key_moved_to_another_row(alice, template):
    a = DataKeyFactory(desktop=DesktopFactory(world=alice, template=template), tenant=alice.tenant)
    b = DataKeyFactory(desktop=DesktopFactory(world=alice, template=template), tenant=alice.tenant)
    DataKey.objects.filter(pk=b.pk).update(wrapped=a.wrapped)
    with pytest.raises(kek.UnwrapError):
        disk_keys.data_key_of(DataKey.objects.get(pk=b.pk))
    assert Desktop.objects.count() == 2
