"""The key-encryption key: read from the environment, required in production, and the wrap/unwrap of data keys."""

from __future__ import annotations

import base64
import multiprocessing
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from quetzal import kek
from quetzal.env import env_kek
from tests.services import optional

GOOD = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("QUETZAL_KEK", "QUETZAL_KEK_FILE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_it_reads_the_kek_from_a_variable_or_a_file(clean_env, tmp_path):
    clean_env.setenv("QUETZAL_KEK", GOOD)
    assert env_kek("QUETZAL_KEK", "QUETZAL_KEK_FILE") == bytes(range(32))
    clean_env.delenv("QUETZAL_KEK")
    path = tmp_path / "kek"
    path.write_text(GOOD + "\n")
    clean_env.setenv("QUETZAL_KEK_FILE", str(path))
    assert env_kek("QUETZAL_KEK", "QUETZAL_KEK_FILE") == bytes(range(32))
    clean_env.delenv("QUETZAL_KEK_FILE")
    assert env_kek("QUETZAL_KEK", "QUETZAL_KEK_FILE") is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not base64!", "must be base64"),
        (
            base64.b64encode(bytes(range(16))).decode(),
            "must decode to 32 bytes",
        ),  # a fixed id: xdist workers compare ids
        (base64.b64encode(b"\0" * 32).decode(), "does not look random"),
    ],
)
def test_it_refuses_a_bad_kek(clean_env, value, message):
    clean_env.setenv("QUETZAL_KEK", value)
    with pytest.raises(ImproperlyConfigured, match=message):
        env_kek("QUETZAL_KEK", "QUETZAL_KEK_FILE")


def test_it_refuses_both_sources_a_missing_file_and_nothing_when_required(clean_env, tmp_path):
    clean_env.setenv("QUETZAL_KEK", GOOD)
    clean_env.setenv("QUETZAL_KEK_FILE", str(tmp_path / "kek"))
    with pytest.raises(ImproperlyConfigured, match="only one"):
        env_kek("QUETZAL_KEK", "QUETZAL_KEK_FILE")
    clean_env.delenv("QUETZAL_KEK")
    with pytest.raises(ImproperlyConfigured, match="cannot read"):
        env_kek("QUETZAL_KEK", "QUETZAL_KEK_FILE")
    clean_env.delenv("QUETZAL_KEK_FILE")
    with pytest.raises(ImproperlyConfigured, match="must be set"):
        env_kek("QUETZAL_KEK", "QUETZAL_KEK_FILE", required=True)


def _production_check(extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("QUETZAL_KEK", "QUETZAL_KEK_FILE", "DEBUG")}
    env |= {
        "DJANGO_SETTINGS_MODULE": "quetzal.settings.production",
        "SECRET_KEY": "p" * 30 + "roduction-secret-key-xyz",
    }
    env |= extra_env
    code = "import django; django.setup(); from django.conf import settings; print(len(settings.QUETZAL_KEK))"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_it_refuses_to_start_in_production_without_a_kek():
    refused = _production_check({})
    assert refused.returncode != 0 and "QUETZAL_KEK or QUETZAL_KEK_FILE must be set" in refused.stderr
    started = _production_check({"QUETZAL_KEK": GOOD})
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "32"


def test_it_generates_the_embedded_development_kek_once_and_says_so(settings, tmp_path, caplog):
    # Given no configured KEK (make run, tests)
    settings.QUETZAL_KEK = None
    settings.QUETZAL_KEK_DEV_FILE = tmp_path / "var" / "kek"
    # When a key is first needed
    first = kek.current_kek()
    # Then a random KEK is written under var/, readable by the service account only, with a log line saying so
    assert stat.S_IMODE(os.stat(settings.QUETZAL_KEK_DEV_FILE).st_mode) == 0o600
    assert "generated an embedded development key-encryption key" in caplog.text
    caplog.clear()
    # ...and later calls use the same key without a new line
    assert kek.current_kek().kek_id == first.kek_id and caplog.text == ""


def test_it_unwraps_what_it_wrapped_only_under_the_same_kek_and_row():
    given = kek.Kek(os.urandom(32))
    other = kek.Kek(os.urandom(32))
    data_key = kek.new_data_key()
    wrapped, kek_id = kek.wrap(data_key, context="disk:row-1", kek=given)
    assert kek_id == given.kek_id and data_key not in wrapped
    assert kek.unwrap(wrapped, context="disk:row-1", kek_id=kek_id, keks=[other, given]) == data_key
    # Another row's context, another KEK, or a flipped bit: no key
    with pytest.raises(kek.UnwrapError, match=r"^the wrapped key does not open under this KEK and row$"):
        kek.unwrap(wrapped, context="disk:row-2", kek_id=kek_id, keks=[given])
    with pytest.raises(kek.UnwrapError, match="not configured"):
        kek.unwrap(wrapped, context="disk:row-1", kek_id=kek_id, keks=[other])
    tampered = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
    with pytest.raises(kek.UnwrapError):
        kek.unwrap(tampered, context="disk:row-1", kek_id=kek_id, keks=[given])


def test_it_never_shows_the_kek_in_its_repr():
    key = os.urandom(32)
    assert key.hex() not in repr(kek.Kek(key)) and base64.b64encode(key).decode() not in repr(kek.Kek(key))


def test_it_seals_a_secret_of_its_own_length_bound_to_its_row():
    given = kek.Kek(os.urandom(32))
    sealed, kek_id = kek.seal(b"a client secret of any length", context="sso:1", kek=given)
    assert kek.unwrap(sealed, context="sso:1", kek_id=kek_id, keks=[given]) == b"a client secret of any length"
    with pytest.raises(kek.UnwrapError):
        kek.unwrap(sealed, context="sso:2", kek_id=kek_id, keks=[given])
    for bad in (b"", b"x" * (kek.MAX_SEALED_SECRET_BYTES + 1)):
        with pytest.raises(ValueError):
            kek.seal(bad, context="sso:1", kek=given)
    with pytest.raises(ValueError):
        kek.wrap(b"short", context="disk:1", kek=given)  # a data key is still exactly 32 bytes


def test_it_refuses_a_cut_short_or_unknown_wrapped_key_as_such():
    given = kek.Kek(os.urandom(32))
    wrapped, kek_id = kek.wrap(kek.new_data_key(), context="disk:row-1", kek=given)
    # A value cut short (a version byte and part of the nonce), or one of a format this code does not know
    for bad in (wrapped[:5], bytes([2]) + wrapped[1:], b""):
        with pytest.raises(kek.UnwrapError, match=r"^unknown wrapped-key format$"):
            kek.unwrap(bad, context="disk:row-1", kek_id=kek_id, keks=[given])


def test_it_makes_the_development_kek_where_told_whether_or_not_its_directory_exists(settings, tmp_path, caplog):
    settings.QUETZAL_KEK = None
    # A fresh checkout: no var/ at all, several directories deep
    settings.QUETZAL_KEK_DEV_FILE = tmp_path / "checkout" / "var" / "kek"
    first = kek.current_kek()
    assert settings.QUETZAL_KEK_DEV_FILE.exists()
    # The log line names the file and says production would refuse to start
    assert (
        "No QUETZAL_KEK or QUETZAL_KEK_FILE set: generated an embedded development key-encryption key at "
        f"{settings.QUETZAL_KEK_DEV_FILE}. Production settings refuse to start without one."
    ) in caplog.text
    # A var/ that exists already (other files in it) gets its own key file next to them
    settings.QUETZAL_KEK_DEV_FILE = tmp_path / "checkout" / "var" / "other-kek"
    assert kek.current_kek().kek_id != first.kek_id


def _first_kek(path: Path, start, answers) -> None:
    """A process starting up (make run's web or worker): the embedded KEK, or what went wrong."""
    start.wait(timeout=30)  # all of them at once
    try:
        answers.put(kek._embedded_dev_kek(path))
    except Exception as error:  # the test names it
        answers.put(repr(error))


def test_processes_starting_at_once_share_one_development_kek(tmp_path):
    # Several processes at once on a fresh checkout, a few times over (each a fresh var/): while one
    # writes the key the others find the name taken or the file there, never a half-written key
    # (this process is one of them too)
    context = multiprocessing.get_context("fork")
    for round_ in range(5):
        path = tmp_path / f"checkout-{round_}" / "var" / "kek"
        start, answers = context.Barrier(9), context.Queue()
        processes = [context.Process(target=_first_kek, args=(path, start, answers)) for _ in range(8)]
        for process in processes:
            process.start()
        _first_kek(path, start, answers)
        keys = [answers.get(timeout=30) for _ in range(9)]
        for process in processes:
            process.join(timeout=30)
        # Then every one of them has the same key, the one in the file, and no temporary file is left
        assert keys == [keys[0]] * 9, keys
        assert keys[0] == base64.b64decode(path.read_text())
        assert sorted(p.name for p in path.parent.iterdir()) == ["kek"]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_it_makes_the_development_kek_when_the_system_temporary_directory_is_another_filesystem(monkeypatch, tmp_path):
    # Given a system temporary directory on tmpfs and var/ on the disk (a common layout)
    shm = Path("/dev/shm")
    optional(
        shm.is_dir() and os.stat(shm).st_dev != os.stat(tmp_path).st_dev,
        "/dev/shm on a filesystem of its own (the layout under test)",
    )
    elsewhere = Path(tempfile.mkdtemp(dir=shm))
    monkeypatch.setattr(tempfile, "tempdir", str(elsewhere))
    try:
        # When the key is first made, then it is made (its temporary file lies next to it, not across devices)
        key = kek._embedded_dev_kek(tmp_path / "var" / "kek")
        assert key == base64.b64decode((tmp_path / "var" / "kek").read_text())
        assert list(elsewhere.iterdir()) == []
    finally:
        shutil.rmtree(elsewhere)


def test_it_names_a_damaged_development_kek_file(settings, tmp_path):
    settings.QUETZAL_KEK = None
    settings.QUETZAL_KEK_DEV_FILE = tmp_path / "kek"
    settings.QUETZAL_KEK_DEV_FILE.write_text("not a key\n")
    with pytest.raises(ImproperlyConfigured, match="^" + re.escape(f"{settings.QUETZAL_KEK_DEV_FILE} must be base64")):
        kek.current_kek()


def test_it_refuses_keys_of_the_wrong_length_saying_which():
    with pytest.raises(ValueError, match=r"^a KEK is 32 bytes$"):
        kek.Kek(os.urandom(16))
    with pytest.raises(ValueError, match=r"^a data key is 32 bytes$"):
        kek.wrap(os.urandom(16), context="disk:row-1", kek=kek.Kek(os.urandom(32)))
