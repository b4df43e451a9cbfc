"""Session recording: what the browser saw is written with timestamps, replays identically, and expires."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from desktops.console import recordings, sessions
from desktops.console.models import ConsoleSession, Recording
from desktops.console.recordfile import (
    HEADER,
    MAGIC,
    SEALED_MAGIC,
    PlainReader,
    RecordingFormatError,
    RecordingWriter,
    read_frames,
    stats_of,
)
from desktops.console.tests.fixtures import (  # noqa: F401 (fixtures)
    GREETING,
    adb,
    browser,
    communicator,
    fake_vnc_fixture,
    running_desktop,
    thread_connections_fixture,
)
from desktops.models import Desktop
from desktops.services import disk_keys
from desktops.tests.factories import DesktopFactory
from tenants.models import AuditEvent
from tests.fixtures import api_client, login_client


@pytest.fixture
def recordings_root(settings, tmp_path) -> Path:
    settings.RECORDINGS_ROOT = tmp_path / "recordings"
    return settings.RECORDINGS_ROOT


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("thread_connections")
async def test_it_records_what_the_browser_saw_and_replays_it_identically(
    alice, host, template, fake_vnc, recordings_root
):
    # Given a tenant that records consoles
    alice.tenant.recording_enabled = True
    await adb(alice.tenant.save)()
    desk = await adb(running_desktop)(alice, host, template, fake_vnc.port)
    member = await adb(browser)(alice.member, alice.tenant)
    ticket = await adb(member.ticket)(desk)
    client = communicator(desk.pk, ticket=ticket, headers=member.headers())
    assert (await client.connect())[0]
    # When the desktop draws in three bursts, 150 ms apart, while the person types
    seen = bytearray(await client.receive_from())
    bursts = [bytes([i]) * (40_000 + i) for i in range(1, 4)]
    for burst in bursts:
        await asyncio.sleep(0.15)
        await fake_vnc.send(burst)
        await client.send_to(bytes_data=b"\x04\x01\x00\x00\x00\x00\x00\x61")
    while len(seen) < len(GREETING) + sum(map(len, bursts)):
        seen.extend(await client.receive_from())
    await client.disconnect()
    await asyncio.wait_for(fake_vnc.eof.wait(), 5)
    # Then the recording holds exactly the bytes the browser received, in order, with their timing
    recording = await adb(Recording.objects.select_related("session").get)(desktop=desk)
    path = recordings.file_path(recording)
    key = await adb(disk_keys.tenant_recording_key)(alice.tenant)
    frames = await adb(lambda: list(read_frames(path, key=key)))()
    assert b"".join(payload for _, payload in frames) == bytes(seen)
    # ...sealed at rest with the tenant's key: the screen bytes are not in the file in clear
    on_disk = path.read_bytes()
    assert on_disk.startswith(SEALED_MAGIC) and all(burst[:64] not in on_disk for burst in bursts)
    times = [at for at, _ in frames]
    assert times == sorted(times) and times[-1] >= 400
    assert recording.ended_at is not None and recording.session.end_reason.startswith("browser_closed")
    assert (recording.frames, recording.size_bytes) == (len(frames), path.stat().st_size)
    assert recording.duration_ms == times[-1]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    # And a tenant admin's replay streams that recording, decrypted into the plain layout the player reads
    admin = await adb(login_client)(alice.admin, alice.tenant)
    response = await adb(admin.get)(f"/console/recordings/{recording.pk}/data/")
    assert response.status_code == 200 and response["Cache-Control"] == "private, no-store"
    streamed = await adb(lambda: b"".join(response.streaming_content))()
    assert streamed == PlainReader(path, key=key).read() and streamed.startswith(MAGIC)
    page = await adb(admin.get)(f"/console/recordings/{recording.pk}/")
    assert page.status_code == 200 and f"/console/recordings/{recording.pk}/data/" in page.content.decode()
    assert await adb(AuditEvent.objects.filter(action="console.recording.replay", actor=alice.admin).exists)()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("thread_connections")
async def test_it_records_nothing_when_the_policy_is_off(alice, host, template, fake_vnc, recordings_root):
    desk = await adb(running_desktop)(alice, host, template, fake_vnc.port)
    member = await adb(browser)(alice.member, alice.tenant)
    client = communicator(desk.pk, ticket=await adb(member.ticket)(desk), headers=member.headers())
    assert (await client.connect())[0]
    await client.receive_from()
    await client.disconnect()
    await asyncio.wait_for(fake_vnc.eof.wait(), 5)
    assert not await adb(Recording.objects.exists)()
    assert not recordings_root.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("thread_connections")
async def test_it_keeps_the_console_working_when_recording_fails(alice, host, template, fake_vnc, settings, tmp_path):
    # Given recording on, but a recordings root that cannot hold files (a full or broken disk)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings.RECORDINGS_ROOT = blocker
    alice.tenant.recording_enabled = True
    await adb(alice.tenant.save)()
    desk = await adb(running_desktop)(alice, host, template, fake_vnc.port)
    member = await adb(browser)(alice.member, alice.tenant)
    client = communicator(desk.pk, ticket=await adb(member.ticket)(desk), headers=member.headers())
    # When the person opens the console, it works as usual
    assert (await client.connect())[0]
    assert await client.receive_from() == GREETING
    await client.send_to(bytes_data=b"hello")
    assert await fake_vnc.wait_received(5) == b"hello"
    await client.disconnect()
    await asyncio.wait_for(fake_vnc.eof.wait(), 5)
    # And the recording is closed as empty instead of staying open forever
    recording = await adb(Recording.objects.get)(desktop=desk)
    assert recording.ended_at is not None and recording.frames == 0


def _recorded(
    world, template, root: Path, *, days_ago: float = 0, ended: bool = True, payload: bytes = b"x"
) -> Recording:
    started = timezone.now() - timedelta(days=days_ago)
    desktop = DesktopFactory(world=world, template=template, name="Rec")
    session = ConsoleSession.objects.create(tenant=world.tenant, desktop=desktop, user=world.member, started_at=started)
    recording = recordings.start(session)
    path = recordings.file_path(recording)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(MAGIC + HEADER.pack(0, len(payload), 0) + payload)
    if ended:
        Recording.objects.filter(pk=recording.pk).update(ended_at=started + timedelta(minutes=5))
    recording.refresh_from_db()
    return recording


def test_it_keeps_recordings_to_admins_of_their_tenant(alice, bob, template, recordings_root):
    recording = _recorded(alice, template, recordings_root)
    data = f"/console/recordings/{recording.pk}/data/"
    assert login_client(alice.member, alice.tenant).get(data).status_code == 403
    assert login_client(bob.admin, bob.tenant).get(data).status_code == 404
    listed = api_client(alice.admin, alice.tenant).get(f"/api/v1/recordings/?desktop={recording.desktop_id}").json()
    assert [r["id"] for r in listed["results"]] == [recording.pk]
    assert listed["results"][0]["replay_url"] == f"/console/recordings/{recording.pk}/"
    assert api_client(alice.member, alice.tenant).get("/api/v1/recordings/").status_code == 403


def test_it_lists_sessions_per_desktop_and_person_for_admins(alice, template, recordings_root):
    recording = _recorded(alice, template, recordings_root)
    page = login_client(alice.admin, alice.tenant).get(f"/console/sessions/?person={alice.member.pk}")
    assert page.status_code == 200
    html = page.content.decode()
    assert alice.member.email in html and f"/console/recordings/{recording.pk}/" in html
    assert login_client(alice.member, alice.tenant).get("/console/sessions/").status_code == 403
    api = api_client(alice.admin, alice.tenant).get(f"/api/v1/console-sessions/?desktop={recording.desktop_id}")
    assert [(s["id"], s["recording"], s["person"]) for s in api.json()["results"]] == [
        (recording.session_id, recording.pk, alice.member.email)
    ]


def test_it_deletes_a_recording_and_its_file_on_request(
    alice, template, recordings_root, django_capture_on_commit_callbacks
):
    recording = _recorded(alice, template, recordings_root)
    path = recordings.file_path(recording)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client(alice.admin, alice.tenant).delete(f"/api/v1/recordings/{recording.pk}/")
    assert response.status_code == 204
    assert not Recording.objects.exists() and not path.exists()
    assert AuditEvent.objects.filter(action="console.recording.delete", actor=alice.admin).exists()


def test_it_deletes_recordings_after_the_tenants_retention(alice, bob, template, recordings_root):
    # Given alice keeps recordings 30 days and bob keeps them forever (0)
    alice.tenant.recording_retention_days = 30
    alice.tenant.save()
    bob.tenant.recording_retention_days = 0
    bob.tenant.save()
    old = _recorded(alice, template, recordings_root, days_ago=31)
    recent = _recorded(alice, template, recordings_root, days_ago=29)
    still_open = _recorded(alice, template, recordings_root, days_ago=40, ended=False)
    kept_forever = _recorded(bob, template, recordings_root, days_ago=400)
    # When the beat task runs
    from desktops.console.tasks import cleanup

    result = cleanup()
    # Then only the old, finished recording of alice is gone, file included
    assert result["recordings_deleted"] == 1
    assert set(Recording.objects.values_list("pk", flat=True)) == {recent.pk, still_open.pk, kept_forever.pk}
    assert not recordings.file_path(old).exists() and recordings.file_path(recent).exists()
    event = AuditEvent.objects.get(action="console.recording.expire")
    assert event.tenant == alice.tenant and event.data == {"count": 1, "retention_days": 30}


def test_it_ends_sessions_whose_proxy_died_and_salvages_their_recording(alice, template, recordings_root, settings):
    # Given a session whose web process was killed: open, silent for longer than four heartbeats
    settings.CONSOLE_HEARTBEAT_S = 30
    recording = _recorded(alice, template, recordings_root, ended=False, payload=b"screen")
    Desktop.objects.filter(pk=recording.desktop_id).update(consoles_open=1)
    ConsoleSession.objects.filter(pk=recording.session_id).update(last_seen_at=timezone.now() - timedelta(minutes=3))
    # When the sweep runs
    assert sessions.end_stale_sessions() == 1
    # Then the desktop no longer counts the console, and the recording is closed with what reached the disk
    assert Desktop.objects.get(pk=recording.desktop_id).consoles_open == 0
    assert ConsoleSession.objects.get(pk=recording.session_id).end_reason == "proxy_lost"
    recording.refresh_from_db()
    assert recording.ended_at is not None and recording.frames == 1
    assert sessions.end_stale_sessions() == 0


def test_it_reads_a_recording_cut_short_up_to_its_last_whole_frame(tmp_path):
    path = tmp_path / "torn.qzrec"
    path.write_bytes(MAGIC + HEADER.pack(5, 3, 0) + b"abc" + HEADER.pack(9, 10, 0) + b"half")
    assert list(read_frames(path)) == [(5, b"abc")]
    assert stats_of(path).frames == 1
    (tmp_path / "other").write_bytes(b"not a recording")
    with pytest.raises(RecordingFormatError):
        list(read_frames(tmp_path / "other"))


def test_it_refuses_a_recording_path_outside_the_root(alice, template, recordings_root):
    recording = _recorded(alice, template, recordings_root)
    recording.path = "../../etc/passwd"
    with pytest.raises(recordings.RecordingMissing):
        recordings.file_path(recording)


def _sealed(path: Path, key: bytes, batches: list[list[bytes]]) -> None:
    """A sealed recording written by the real writer, one flush per batch of frames."""

    async def write() -> None:
        writer = RecordingWriter(path, key=key, clock=lambda: 0.0)
        await writer.open()
        for batch in batches:
            for frame in batch:
                writer.append(frame)
            await writer.flush()
        await writer.close()

    asyncio.run(write())


def test_it_reads_a_sealed_recording_only_with_its_tenants_key(tmp_path):
    # Given a recording sealed with one key, in two records
    path, key = tmp_path / "sealed.qzrec", os.urandom(32)
    _sealed(path, key, [[b"first-frame"], [b"second-frame"]])
    # Then the right key reads its frames, and the file holds none of them in clear
    assert [payload for _, payload in read_frames(path, key=key)] == [b"first-frame", b"second-frame"]
    assert b"first-frame" not in path.read_bytes()
    # ...no key or another key reads nothing
    with pytest.raises(RecordingFormatError):
        list(read_frames(path))
    with pytest.raises(RecordingFormatError):
        list(read_frames(path, key=os.urandom(32)))


def test_it_notices_sealed_records_swapped_and_skips_a_torn_last_one(tmp_path):
    path, key = tmp_path / "sealed.qzrec", os.urandom(32)
    _sealed(path, key, [[b"one"], [b"two"]])
    data = path.read_bytes()
    head = len(SEALED_MAGIC) + 16
    first_len = int.from_bytes(data[head : head + 4], "big")
    first, second = data[head : head + 4 + first_len], data[head + 4 + first_len :]
    # When the two records are swapped, reading fails instead of replaying them out of order
    path.write_bytes(data[:head] + second + first)
    with pytest.raises(RecordingFormatError):
        list(read_frames(path, key=key))
    # When the last record is cut short (a killed proxy), everything before it still replays
    path.write_bytes(data[:head] + first + second[:-5])
    assert [payload for _, payload in read_frames(path, key=key)] == [b"one"]
