"""Several real libvirtd hosts on this one machine, each in its own network, mount and UTS namespace.

Each host N is a network namespace joined to this machine by a veth pair (10.99.N.1/30 here,
10.99.N.2/30 there), a mount namespace with private /run/libvirt, /var/lib/libvirt, /etc/libvirt,
/var/log/libvirt and /var/cache/libvirt, and its own hostname. Its libvirtd listens only on
10.99.N.2 (plain TCP, no auth: the address is reachable from this machine only) with a distinct
host_uuid, so migration between them works; its virtlogd keeps its own pidfile. The machine's own
libvirtd (qemu:///system, shared with other tests) is never touched.

Traffic goes only to addresses inside the namespaces made here (FINDINGS.md, "Several real hosts
on one machine"). Needs root, ip(8), unshare(1), nsenter(1), libvirtd and virtlogd; under CI=true a
missing piece fails the test instead of skipping it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.services import require, require_tool

# Third octets tried for the /30s; high enough to stay clear of the ranges other tests pick.
FIRST_OCTET = 10
SECOND_OCTET = 99
THIRD_OCTETS = range(160, 250)
PRIVATE_DIRS = {
    "run": "/run/libvirt",
    "lib": "/var/lib/libvirt",
    "etc": "/etc/libvirt",
    "log": "/var/log/libvirt",
    "cache": "/var/cache/libvirt",
}
# The daemons' own configuration is copied; definitions the machine's libvirtd keeps (domains,
# networks, pools, secrets of other tests) are not.
COPIED_CONFIG = ("libvirt.conf", "qemu.conf", "virtlogd.conf", "virtlockd.conf", "nwfilter")
POOL_PATH = "/var/lib/libvirt/images"


class HarnessError(RuntimeError):
    """A namespace host could not be set up."""


def _run(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise HarnessError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _address_taken(address: str) -> bool:
    return address in _run("ip", "-o", "addr", "show", check=False).stdout


@dataclass
class NamespaceHost:
    """One libvirtd host in its own namespaces, reachable as qemu+tcp://<address>/system."""

    index: int
    octet: int
    root: Path
    tag: str
    host_uuid: str
    holder: subprocess.Popen | None = None

    @property
    def name(self) -> str:
        return f"nshost{self.index}"

    @property
    def netns(self) -> str:
        return f"qz{self.tag}h{self.index}"

    @property
    def veth_outside(self) -> str:
        return f"qz{self.tag}{self.index}o"[:15]

    @property
    def veth_inside(self) -> str:
        return f"qz{self.tag}{self.index}i"[:15]

    @property
    def gateway(self) -> str:
        """This machine's end of the veth pair."""
        return f"{FIRST_OCTET}.{SECOND_OCTET}.{self.octet}.1"

    @property
    def address(self) -> str:
        """The host's management address (libvirtd, VNC, migration)."""
        return f"{FIRST_OCTET}.{SECOND_OCTET}.{self.octet}.2"

    @property
    def uri(self) -> str:
        return f"qemu+tcp://{self.address}/system"

    def nsenter(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a command inside this host's namespaces."""
        assert self.holder is not None, "host not started"
        return _run("nsenter", "-t", str(self.holder.pid), "-n", "-m", "-u", "--", *argv, check=check, timeout=timeout)

    # --- lifecycle ---------------------------------------------------------------------------

    def create(self) -> None:
        """Make the namespaces, the wire and the private directories, then start the daemons."""
        for key in PRIVATE_DIRS:
            (self.root / key).mkdir(parents=True, exist_ok=True)
            os.chmod(self.root / key, 0o755)
        # libvirtd makes its own state directories but not the log directory serial consoles write to.
        (self.root / "log" / "qemu").mkdir(exist_ok=True)
        etc = self.root / "etc"
        for item in COPIED_CONFIG:
            source = Path("/etc/libvirt") / item
            if source.is_dir():
                shutil.copytree(source, etc / item, dirs_exist_ok=True)
            elif source.exists():
                shutil.copy2(source, etc / item)
        (etc / "libvirtd.conf").write_text(
            "listen_tls = 0\n"
            "listen_tcp = 1\n"
            'auth_tcp = "none"\n'
            f'listen_addr = "{self.address}"\n'
            f'host_uuid = "{self.host_uuid}"\n'
            'log_outputs = "2:file:/var/log/libvirt/libvirtd.log"\n'
        )
        _run("ip", "netns", "add", self.netns)
        _run("ip", "link", "add", self.veth_outside, "type", "veth", "peer", "name", self.veth_inside)
        _run("ip", "link", "set", self.veth_inside, "netns", self.netns)
        _run("ip", "addr", "add", f"{self.gateway}/30", "dev", self.veth_outside)
        _run("ip", "link", "set", self.veth_outside, "up")
        _run("ip", "-n", self.netns, "addr", "add", f"{self.address}/30", "dev", self.veth_inside)
        _run("ip", "-n", self.netns, "link", "set", self.veth_inside, "up")
        _run("ip", "-n", self.netns, "link", "set", "lo", "up")
        mounts = "; ".join(f"mount --bind {self.root / key} {target}" for key, target in PRIVATE_DIRS.items())
        ready = self.root / "ready"
        # A holder process keeps the mount and UTS namespaces alive while daemons come and go.
        self.holder = subprocess.Popen(
            [
                "ip", "netns", "exec", self.netns,
                "unshare", "--mount", "--uts", "--propagation", "private", "--",
                "sh", "-c", f"set -e; {mounts}; hostname {self.name}; touch {ready}; exec sleep infinity",
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not ready.exists():
            if self.holder.poll() is not None or time.monotonic() > deadline:
                stderr = self.holder.stderr.read().decode() if self.holder.stderr else ""
                raise HarnessError(f"namespaces of {self.name} did not come up: {stderr}")
            time.sleep(0.05)
        self.nsenter("virtlogd", "-d", "-p", "/run/libvirt/virtlogd.pid")
        self.start_libvirtd()
        self._define_pool()

    def start_libvirtd(self, timeout_s: float = 20) -> None:
        """Start (or restart) this host's libvirtd and wait until it answers on its address."""
        self.nsenter("libvirtd", "-d", "--listen", "-p", "/run/libvirt/libvirtd.pid")
        deadline = time.monotonic() + timeout_s
        while _run("virsh", "-c", self.uri, "uri", check=False, timeout=10).returncode != 0:
            if time.monotonic() > deadline:
                log = (self.root / "log" / "libvirtd.log").read_text(errors="replace")[-2000:]
                raise HarnessError(f"libvirtd of {self.name} did not answer at {self.uri}: {log}")
            time.sleep(0.2)

    def enable_tls(self, bundle_dir: Path) -> None:
        """Serve libvirt over TLS too, with the server bundle enrol_host made (cacert, servercert, serverkey)."""
        pki = self.root / "etc" / "pki"
        pki.mkdir(exist_ok=True)
        for name in ("cacert.pem", "servercert.pem", "serverkey.pem"):
            shutil.copy2(bundle_dir / name, pki / name)
        conf = self.root / "etc" / "libvirtd.conf"
        text = conf.read_text().replace("listen_tls = 0\n", "listen_tls = 1\n")
        text += (
            'ca_file = "/etc/libvirt/pki/cacert.pem"\n'
            'cert_file = "/etc/libvirt/pki/servercert.pem"\n'
            'key_file = "/etc/libvirt/pki/serverkey.pem"\n'
        )
        conf.write_text(text)
        self.kill_libvirtd()
        self.start_libvirtd()

    def _pid(self, daemon: str) -> int | None:
        try:
            return int((self.root / "run" / f"{daemon}.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def kill_libvirtd(self) -> None:
        """SIGKILL this host's libvirtd (its guests keep running, as on a real host)."""
        pid = self._pid("libvirtd")
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _run("virsh", "-c", self.uri, "uri", check=False, timeout=10).returncode == 0:
            if time.monotonic() > deadline:
                raise HarnessError(f"libvirtd of {self.name} still answers after SIGKILL")
            time.sleep(0.1)
        (self.root / "run" / "libvirtd.pid").unlink(missing_ok=True)

    def virsh(self, *argv: str, check: bool = True) -> str:
        """virsh against this host over its TCP address."""
        return _run("virsh", "-c", self.uri, *argv, check=check, timeout=60).stdout

    def _define_pool(self) -> None:
        self.virsh("pool-define-as", "default", "dir", "--target", POOL_PATH)
        self.virsh("pool-build", "default")
        self.virsh("pool-start", "default")

    def destroy(self) -> None:
        """Stop every guest and daemon of this host, and remove its namespaces and wire."""
        if self.holder is not None and self.holder.poll() is None:
            if self._pid("libvirtd") is not None:
                names = self.virsh("list", "--name", check=False).split()
                for name in names:
                    self.virsh("destroy", name, check=False)
            # QEMU processes live in the holder's namespaces; end them with the daemons.
            for daemon in ("libvirtd", "virtlogd"):
                pid = self._pid(daemon)
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
            self._kill_qemu()
            os.killpg(self.holder.pid, signal.SIGKILL)
            self.holder.wait(timeout=10)
        _run("ip", "netns", "del", self.netns, check=False)
        _run("ip", "link", "del", self.veth_outside, check=False)

    def _kill_qemu(self) -> None:
        """SIGKILL QEMU processes left in this host's network namespace (pids listed by ip netns)."""
        pids = _run("ip", "netns", "pids", self.netns, check=False).stdout.split()
        holder = self.holder.pid if self.holder is not None else -1
        for pid in pids:
            if int(pid) == holder:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def require_namespace_support() -> None:
    """Root and the tools the harness uses, through the service gate."""
    require(os.geteuid() == 0, "root (namespace hosts need CAP_SYS_ADMIN and CAP_NET_ADMIN)")
    for tool, package in (
        ("ip", "iproute2"),
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
        ("libvirtd", "libvirt-daemon-system"),
        ("virtlogd", "libvirt-daemon-system"),
        ("virsh", "libvirt-clients"),
    ):
        require_tool(tool, package)


def start_hosts(count: int, root: Path) -> list[NamespaceHost]:
    """Start `count` namespace hosts under `root`; on any failure the ones started are removed."""
    tag = uuid.uuid4().hex[:4]
    octets = [o for o in THIRD_OCTETS if not _address_taken(f"{FIRST_OCTET}.{SECOND_OCTET}.{o}.1/")][:count]
    if len(octets) < count:
        raise HarnessError("no free 10.99.x.0/30 subnets left for namespace hosts")
    hosts = [
        NamespaceHost(index=i + 1, octet=octet, root=root / f"host{i + 1}", tag=tag, host_uuid=str(uuid.uuid4()))
        for i, octet in enumerate(octets)
    ]
    started: list[NamespaceHost] = []
    try:
        for host in hosts:
            started.append(host)
            host.create()
        # Host to host (migration, NBD disk copies) through this machine, to the harness's addresses only.
        for host in hosts:
            for peer in hosts:
                if peer is not host:
                    _run("ip", "-n", host.netns, "route", "add", f"{peer.address}/32", "via", host.gateway)
    except BaseException:
        for host in started:
            host.destroy()
        raise
    return hosts


@pytest.fixture(scope="session")
def namespace_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NamespaceHost]]:
    """Three real libvirtd hosts in namespaces, torn down at the end of the session."""
    require_namespace_support()
    root = tmp_path_factory.mktemp("nshosts")
    os.chmod(root, 0o755)
    try:
        hosts = start_hosts(3, root)
    except HarnessError as error:
        pytest.fail(f"namespace hosts did not start: {error}", pytrace=False)
    try:
        yield hosts
    finally:
        for host in hosts:
            host.destroy()
