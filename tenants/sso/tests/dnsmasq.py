"""A real DNS server beside the tests: Debian's dnsmasq on a free port of 127.0.0.1, answering for *.test only.

It answers from its command line (`--txt-record`, `--host-record`), so publishing or withdrawing a record restarts
it on the same port with the new set (dnsmasq re-reads no TXT record on SIGHUP). `--local=/test/` makes a name it
does not know NXDOMAIN; a name outside .test is REFUSED (no upstream), which is how a broken server looks.
Missing dnsmasq skips locally and fails under CI=true (tests/services.py).
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.utils import timezone

from quetzal.server import free_port
from tenants.sso.choices import DomainStatus
from tenants.sso.models import IdentityProvider
from tests.services import port_open, require_tool


class Dnsmasq:
    def __init__(self, directory: Path) -> None:
        self.binary = require_tool("dnsmasq", "dnsmasq-base")
        self.directory = directory
        self.port = free_port()
        self.records: list[tuple[str, tuple[str, ...]]] = []
        self.hosts: list[str] = []
        self.process: subprocess.Popen | None = None

    @property
    def nameserver(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def publish(self, name: str, *values: str) -> None:
        """A TXT record at `name` (each value one record, as two TXT records at one name are)."""
        self.records.extend((name, (value,)) for value in values)
        self.restart()

    def publish_split(self, name: str, *strings: str) -> None:
        """One TXT record made of several strings (how a value longer than 255 bytes is published)."""
        self.records.append((name, strings))
        self.restart()

    def publish_host(self, name: str) -> None:
        """An A record only: the name exists but has no TXT record."""
        self.hosts.append(name)
        self.restart()

    def withdraw(self, name: str) -> None:
        self.records = [(n, v) for n, v in self.records if n != name]
        self.restart()

    def clear(self) -> None:
        self.records, self.hosts = [], []
        self.restart()

    def _command(self) -> list[str]:
        command = [
            self.binary,
            "--no-daemon",
            "--conf-file=/dev/null",
            "--pid-file=",
            f"--port={self.port}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--local=/test/",
            "--cache-size=0",
        ]
        for name, strings in self.records:
            # No shell between: the values go as they are (dnsmasq splits strings at commas; tokens have none).
            command.append(f"--txt-record={name}," + ",".join(strings))
        command.extend(f"--host-record={name},127.0.0.9" for name in self.hosts)
        return command

    def restart(self) -> None:
        self.stop()
        log = (self.directory / "dnsmasq.log").open("ab")
        self.process = subprocess.Popen(self._command(), stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", self.port, timeout=0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"dnsmasq did not start: {(self.directory / 'dnsmasq.log').read_text()[-2000:]}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None


@pytest.fixture(scope="module")
def dnsmasq_server(tmp_path_factory) -> Iterator[Dnsmasq]:
    server = Dnsmasq(tmp_path_factory.mktemp("dnsmasq"))
    server.restart()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dns(dnsmasq_server: Dnsmasq, settings) -> Dnsmasq:
    """The module's dnsmasq with no records, and Quetzal asking it (and it alone) with a one-second timeout."""
    dnsmasq_server.clear()
    settings.SSO_DNS_NAMESERVER = dnsmasq_server.nameserver
    settings.SSO_DNS_TIMEOUT_SECONDS = 1
    return dnsmasq_server


@pytest.fixture
def silent_dns(settings) -> Iterator[tuple[str, int]]:
    """A DNS server that never answers: a UDP socket bound on loopback that nobody reads (so a lookup times out)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        settings.SSO_DNS_NAMESERVER = sink.getsockname()
        settings.SSO_DNS_TIMEOUT_SECONDS = 1
        yield sink.getsockname()


def mark_verified(provider: IdentityProvider) -> IdentityProvider:
    """Given: the provider's domains were verified (the tests of sign-in start there; test_domain_verification.py
    proves the verification itself against dnsmasq)."""
    provider.domains.update(status=DomainStatus.VERIFIED, verified_at=timezone.now())
    return provider
