"""The demo desktop image: a Debian kernel, a busybox initramfs and a small qcow2 data disk."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hosts.checksums import sha256_file

# Bump whenever the guest scripts or the layout change, so cached images are rebuilt (each version
# is cached in its own directory, so checkouts of different versions never rebuild over each other).
# 6: the home watcher and qemu-guest-agent (the home branch had them at 4 beside the network branch's 5).
IMAGE_VERSION = 6

READY_BANNER = "QUETZAL-DEMO-READY"
POWEROFF_BANNER = "QUETZAL-DEMO-POWEROFF"
NET_BANNER = "QUETZAL-DEMO-NET"
PROBE_BANNER = "QUETZAL-PROBE"
SIZE_BANNER = "QUETZAL-DEMO-SIZE"
SCREEN_BEGIN = "QUETZAL-SCREEN-BEGIN"
SCREEN_END = "QUETZAL-SCREEN-END"
PROMPT = "quetzal-demo:"
DATA_LABEL = "quetzal-data"
DATA_README = "README.txt"
HOME_BANNER = "QUETZAL-DEMO-HOME"
# Home disks carry this serial prefix (desktops.models.HomeDisk.serial); the guest finds them by it.
HOME_SERIAL_PREFIX = "qzhome"
AGENT_PORT_NAME = "org.qemu.guest_agent.0"
QEMU_GA_CANDIDATES = (Path("/usr/sbin/qemu-ga"), Path("/usr/bin/qemu-ga"))
# Where the guest has it, wherever the build host keeps it (rcS starts it from here).
QEMU_GA_GUEST_PATH = "/usr/sbin/qemu-ga"

# tty1 (the VGA text console, i.e. the VNC screen) is listed first so that /dev/console, which
# follows the last console=, is the serial port: init's own messages then stay off the screen.
# no_timer_check: on a loaded host under TCG the kernel's IO-APIC timer check can fail and panic at boot.
DEMO_CMDLINE = "console=tty1 console=ttyS0,115200 quiet loglevel=3 no_timer_check"
DISK_SIZE_BYTES = 64 * 1024 * 1024
DISK_FORMAT = "qcow2"

KERNEL_NAME = "vmlinuz"
INITRD_NAME = "initrd.img"
DISK_NAME = "disk.qcow2"
MANIFEST_NAME = "demo-image.json"

BUSYBOX_CANDIDATES = (Path("/bin/busybox"), Path("/usr/bin/busybox"))
# e2fsprogs' resize2fs (dynamically linked: its libraries go into the initramfs too) grows /data to its disk.
RESIZE2FS_CANDIDATES = (Path("/sbin/resize2fs"), Path("/usr/sbin/resize2fs"))

# Loaded in this order by the guest; dependencies are resolved from modules.dep at build time.
# crc32c_generic rather than crc32c-intel: TCG's default CPU has no SSE4.2 and ext4 needs crc32c.
GUEST_MODULES = (
    "virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "crc32c_generic", "ext4", "button", "evdev",
)  # fmt: skip

# Fixed so that two builds of the same inputs give the same disk bytes and checksum.
_DISK_UUID = "6a7c3b1e-5d1f-4e8a-9a55-2f0e0c0de5e0"
_FAKE_TIME = "1700000000"


class DemoImageError(RuntimeError):
    """The demo image cannot be built on this machine."""


@dataclass(frozen=True)
class DemoImage:
    """Paths and facts of a built demo image (everything a DomainSpec needs for direct boot)."""

    kernel: Path
    initrd: Path
    disk: Path
    cmdline: str
    disk_sha256: str
    disk_format: str = DISK_FORMAT
    disk_size_bytes: int = DISK_SIZE_BYTES
    kernel_version: str = ""
    # Whether qemu-ga went into the guest: without it the file manager cannot reach a running demo's home.
    guest_agent: bool = False


@dataclass(frozen=True)
class Screen:
    """One text snapshot of the guest's tty1 as mirrored on its serial port."""

    rows: int
    cols: int
    cursor_x: int
    cursor_y: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """The screen as text, trailing blank lines dropped."""
        lines = list(self.lines)
        while lines and not lines[-1]:
            lines.pop()
        return "\n".join(lines)


# --------------------------------------------------------------------------------------- guest

_INIT = """#!/bin/sh
# PID 1 of the Quetzal demo desktop: mount the kernel filesystems, then hand over to busybox init.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
exec /sbin/init
"""

_INITTAB = """::sysinit:/etc/init.d/rcS
tty1::respawn:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/etc/init.d/rcK
"""

_RCS = """#!/bin/sh
# Runs once at boot, before the shell on tty1 starts.
hostname quetzal-demo
# Keep kernel chatter off the VNC screen once we are up.
dmesg -n 1
while read -r ko; do
    insmod "$ko" 2>/dev/null
done < /etc/modules
# virtio_blk probes while it loads; if it found a disk, give devtmpfs a moment for the node.
if [ -n "$(ls /sys/bus/virtio/drivers/virtio_blk/ 2>/dev/null | grep virtio)" ]; then
    i=0
    while [ ! -b /dev/vda ] && [ $i -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
fi
if [ -b /dev/vda ] && [ -z "$(cat /sys/block/vda/serial 2>/dev/null)" ]; then
    mount -t ext4 -o noatime /dev/vda /data 2>/dev/null || echo "quetzal: /dev/vda not mounted" > /dev/ttyS0
fi
# Report the size the desktop got, grow /data to its disk, and again whenever the disk grows live.
/sbin/quetzal-size-watch &
# The person's home disk is hot-plugged at any time; the watcher mounts it over /data when it appears.
/sbin/quetzal-home &
# The guest agent lets the portal's file manager reach /data while the desktop runs.
if [ -x __QEMU_GA__ ]; then
    for n in /sys/class/virtio-ports/*/name; do
        [ "$(cat "$n" 2>/dev/null)" = __AGENT__ ] || continue
        port=/dev/$(basename "$(dirname "$n")")
        mkdir -p /run/qemu-ga
        __QEMU_GA__ -m virtio-serial -p "$port" -t /run/qemu-ga -d -f /run/qemu-ga.pid
    done
fi
# ACPI power button (virsh shutdown / libvirt's graceful shutdown) -> /etc/acpi/PWRF/00000080.
acpid -c /etc/acpi -l /var/log/acpid.log
/sbin/quetzal-screen-mirror &
# A NIC is optional (the demo needs no network); with one, ask DHCP in the background.
ip link set lo up
if [ -e /sys/class/net/eth0 ]; then
    udhcpc -f -q -t 10 -i eth0 -s /etc/udhcpc.script >/dev/null 2>&1 &
fi
# Reachability-probe mode for network tests: only when the kernel command line asks for it.
grep -q 'quetzal.probe=' /proc/cmdline && /sbin/quetzal-probe &
"""

# quetzal.probe=IP:PORT,IP:PORT,... : serve TCP on 8080 and report, round after round, whether each target
# answers a ping and accepts a TCP connection on its port. quetzal.probe_route=1 first routes every target
# outside the default route's gateway through that gateway (how a guest tries to get around port isolation).
_PROBE = """#!/bin/sh
targets=$(sed -n 's/.*quetzal[.]probe=\\([^ ]*\\).*/\\1/p' /proc/cmdline | tr ',' ' ')
mkdir -p /tmp/www && echo ok > /tmp/www/index.html
httpd -p 8080 -h /tmp/www
while ! ip -4 addr show dev eth0 2>/dev/null | grep -q 'inet '; do sleep 0.5; done
me=$(ip -4 addr show dev eth0 | sed -n 's/.*inet \\([0-9.]*\\).*/\\1/p')
gw=
while [ -z "$gw" ]; do gw=$(ip route | sed -n 's/^default via \\([0-9.]*\\).*/\\1/p'); sleep 0.5; done
if grep -q 'quetzal.probe_route=1' /proc/cmdline; then
    for t in $targets; do
        ip=${t%:*}
        [ "$ip" != "$gw" ] && [ "$ip" != "$me" ] && ip route add "$ip/32" via "$gw" dev eth0
    done
    echo "__PROBE__ routes $(ip route | tr '\\n' ';')" > /dev/ttyS0
fi
n=0
while :; do
    n=$((n + 1))
    for t in $targets; do
        ip=${t%:*} port=${t#*:}
        [ "$ip" = "$me" ] && continue
        if ping -c 1 -W 1 "$ip" >/dev/null 2>&1; then p=ok; else p=no; fi
        if nc -w 1 "$ip" "$port" </dev/null >/dev/null 2>&1; then c=ok; else c=no; fi
        echo "__PROBE__ $n $me $ip ping=$p tcp=$c" > /dev/ttyS0
    done
    sleep 1
done
"""

_UDHCPC_SCRIPT = """#!/bin/sh
# busybox udhcpc hook: configure the lease and report it on the serial port.
case "$1" in
    deconfig)
        ip addr flush dev "$interface"
        ip link set "$interface" up
        ;;
    bound|renew)
        ip addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface"
        [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
        : > /etc/resolv.conf
        for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
        echo "__NET__ $interface $ip" > /dev/ttyS0
        ;;
esac
"""

_RCK = """#!/bin/sh
# Runs at poweroff/reboot, before init kills everything.
echo "__POWEROFF__" > /dev/ttyS0
sync
# Twice: the home may be mounted over the desktop's own disk.
umount /data 2>/dev/null || mount -o remount,ro /data 2>/dev/null
umount /data 2>/dev/null || mount -o remount,ro /data 2>/dev/null
sync
"""

# Finds the home disk by its serial (the guest names hot-plugged disks unpredictably) and mounts it over
# /data; when it is unplugged, lets go, and /data shows the desktop's own disk again.
_HOME_WATCH = """#!/bin/sh
mounted=
while :; do
    dev=
    for s in /sys/block/*/serial; do
        case "$(cat "$s" 2>/dev/null)" in
            __PREFIX__*) dev=/dev/$(basename "$(dirname "$s")") ;;
        esac
    done
    if [ -n "$dev" ] && [ -z "$mounted" ]; then
        i=0
        while [ ! -b "$dev" ] && [ $i -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
        if mount -t ext4 -o noatime "$dev" /data 2>/dev/null; then
            mounted=$dev
            echo "__BANNER__ mounted $dev" > /dev/ttyS0
        fi
    elif [ -n "$mounted" ] && [ "$dev" != "$mounted" ]; then
        umount -l /data 2>/dev/null
        echo "__BANNER__ unmounted $mounted" > /dev/ttyS0
        mounted=
    fi
    sleep 0.5
done
"""

_ACPI_POWER = """#!/bin/sh
poweroff
"""

_PROFILE = """export PATH=/sbin:/bin:/usr/sbin:/usr/bin
export HOME=/root
export PS1='__PROMPT__\\w# '
[ -d "$HOME" ] && cd "$HOME"
if [ "$(tty)" = /dev/tty1 ]; then
    # A clean screen: no BIOS or kernel leftovers above the prompt.
    clear
    cat /etc/motd
    echo "__READY__ $(cut -d' ' -f1 /proc/uptime)" > /dev/ttyS0
fi
"""

_MOTD = """
  Quetzal demo desktop
  --------------------
  A busybox shell on a Debian kernel. Your files live in /data.

"""

# Copies the text of tty1 to the serial port whenever it changes, between marker lines that
# carry the geometry and the cursor (read from the 4-byte header of /dev/vcsa1).
_SCREEN_MIRROR = """#!/bin/sh
prev=
while :; do
    set -- $(od -An -tu1 -N4 /dev/vcsa1 2>/dev/null)
    rows=${1:-25} cols=${2:-80} x=${3:-0} y=${4:-0}
    cur="$x $y
$(fold -b -w "$cols" /dev/vcs1 2>/dev/null | sed 's/[[:space:]]*$//')"
    if [ "$cur" != "$prev" ]; then
        {
            echo "__BEGIN__ rows=$rows cols=$cols x=$x y=$y"
            printf '%s\\n' "${cur#*
}"
            echo "__END__"
        } > /dev/ttyS0
        prev=$cur
    fi
    sleep 0.5
done
"""


# Prints the guest's size on the serial port at boot and after every change of the disk's size, growing the
# ext4 filesystem on /data to the whole disk first (online: resize2fs on a mounted ext4 needs no fsck).
_SIZE_WATCH = """#!/bin/sh
report() {
    if [ -b /dev/vda ] && [ -x /sbin/resize2fs ] && grep -q ' /data ' /proc/mounts; then
        /sbin/resize2fs /dev/vda >/dev/null 2>&1 || echo "quetzal: resize2fs failed" > /dev/ttyS0
    fi
    disk=$(blockdev --getsize64 /dev/vda 2>/dev/null || echo 0)
    data=$(df -k /data 2>/dev/null | awk 'NR==2 {print $2}')
    mem=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    echo "__SIZE__ cpus=$(nproc) mem_kib=$mem disk_bytes=$disk data_kib=${data:-0}" > /dev/ttyS0
}
last=
while :; do
    now=$(cat /sys/block/vda/size 2>/dev/null)
    if [ "$now" != "$last" ]; then
        report
        last=$now
    fi
    sleep 1
done
"""


def _guest_files() -> dict[str, tuple[str, int]]:
    """Guest text files by path: (content, mode)."""
    return {
        "init": (_INIT, 0o755),
        "etc/inittab": (_INITTAB, 0o644),
        "etc/init.d/rcS": (
            _RCS.replace("__AGENT__", AGENT_PORT_NAME).replace("__QEMU_GA__", QEMU_GA_GUEST_PATH),
            0o755,
        ),
        "sbin/quetzal-home": (
            _HOME_WATCH.replace("__PREFIX__", HOME_SERIAL_PREFIX).replace("__BANNER__", HOME_BANNER),
            0o755,
        ),
        "etc/init.d/rcK": (_RCK.replace("__POWEROFF__", POWEROFF_BANNER), 0o755),
        "etc/acpi/PWRF/00000080": (_ACPI_POWER, 0o755),
        "etc/udhcpc.script": (_UDHCPC_SCRIPT.replace("__NET__", NET_BANNER), 0o755),
        "etc/profile": (
            _PROFILE.replace("__PROMPT__", PROMPT).replace("__READY__", READY_BANNER),
            0o644,
        ),
        "etc/motd": (_MOTD, 0o644),
        "etc/hostname": ("quetzal-demo\n", 0o644),
        "etc/passwd": ("root:x:0:0:root:/root:/bin/sh\n", 0o644),
        "etc/group": ("root:x:0:\n", 0o644),
        "sbin/quetzal-probe": (_PROBE.replace("__PROBE__", PROBE_BANNER), 0o755),
        "sbin/quetzal-size-watch": (_SIZE_WATCH.replace("__SIZE__", SIZE_BANNER), 0o755),
        "sbin/quetzal-screen-mirror": (
            _SCREEN_MIRROR.replace("__BEGIN__", SCREEN_BEGIN).replace("__END__", SCREEN_END),
            0o755,
        ),
    }


def _scripts_sha256() -> str:
    digest = hashlib.sha256()
    for name, (content, mode) in sorted(_guest_files().items()):
        digest.update(f"{name}\0{mode}\0{content}\0".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------- cpio


class CpioWriter:
    """Writes a cpio archive in the 'newc' format the kernel unpacks as an initramfs."""

    def __init__(self, out: io.BufferedIOBase | io.BytesIO) -> None:
        self._out = out
        self._ino = 1
        self._dirs: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes = b"", *, rdev: tuple[int, int] = (0, 0)) -> None:
        encoded = name.encode() + b"\0"
        fields = (
            self._ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, len(data),
            0, 0, rdev[0], rdev[1], len(encoded), 0,
        )  # fmt: skip
        self._ino += 1
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._out.write(header + encoded + b"\0" * (-(len(header) + len(encoded)) % 4))
        self._out.write(data + b"\0" * (-len(data) % 4))

    def _parents(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.directory("/".join(parts[:i]))

    def directory(self, name: str, mode: int = 0o755) -> None:
        """Add a directory (and its parents) once."""
        if name in self._dirs:
            return
        self._dirs.add(name)
        self._parents(name)
        self._entry(name, stat.S_IFDIR | mode)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        """Add a regular file."""
        self._parents(name)
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        """Add a symbolic link."""
        self._parents(name)
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        """Add a character device node (no root needed: it is only bytes in the archive)."""
        self._parents(name)
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def close(self) -> None:
        """Write the trailer."""
        self._entry("TRAILER!!!", 0)


def read_cpio_names(data: bytes) -> dict[str, int]:
    """Names and modes of the entries of an uncompressed newc cpio archive."""
    entries: dict[str, int] = {}
    pos = 0
    while pos + 110 <= len(data):
        if data[pos : pos + 6] != b"070701":
            raise ValueError(f"bad cpio magic at {pos}")
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_start = pos + 110
        name = data[name_start : name_start + namesize - 1].decode()
        pos = name_start + namesize
        pos += -pos % 4
        pos += size + (-size % 4)
        if name == "TRAILER!!!":
            break
        entries[name] = mode
    return entries


# ------------------------------------------------------------------------------------- helpers


def find_kernel() -> tuple[Path, str]:
    """The newest installed Debian kernel that has its modules: (vmlinuz path, version)."""
    candidates = []
    for vmlinuz in Path("/boot").glob("vmlinuz-*"):
        version = vmlinuz.name.removeprefix("vmlinuz-")
        if (Path("/lib/modules") / version / "modules.dep").exists():
            candidates.append((vmlinuz, version))
    if not candidates:
        raise DemoImageError("no /boot/vmlinuz-* with /lib/modules/<version>: apt-get install linux-image-amd64")

    def key(item: tuple[Path, str]) -> list[tuple[int, int, str]]:
        # Numbers compare as numbers ("6.10" > "6.9"); the tag keeps int and str apart.
        return [(1, int(p), "") if p.isdigit() else (0, 0, p) for p in re.split(r"[.-]", item[1])]

    return max(candidates, key=key)


def find_busybox() -> Path:
    """A statically linked busybox (the initramfs has no libc)."""
    for path in BUSYBOX_CANDIDATES:
        if path.exists():
            with path.open("rb") as fh:
                head = fh.read(1 << 16)
            # A dynamic ELF names its interpreter; a static one does not.
            if b"/lib64/ld-linux" not in head and b"/lib/ld-linux" not in head:
                return path
    raise DemoImageError("no static busybox found: apt-get install busybox-static")


def _module_order(modules_dir: Path, wanted: tuple[str, ...]) -> list[str]:
    """Relative .ko paths of wanted modules and their dependencies, dependencies first."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        if ":" not in line:
            continue
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        name = Path(path).name.split(".ko")[0]
        by_name[name] = path
        by_name[name.replace("-", "_")] = path
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    for name in wanted:
        if name not in by_name:
            # Built into this kernel (or absent): nothing to load.
            continue
        visit(by_name[name])
    return order


def _busybox_applets(busybox: Path) -> list[str]:
    """Full install paths (e.g. 'sbin/init') of the applets busybox provides."""
    out = subprocess.run([str(busybox), "--list-full"], check=True, capture_output=True, text=True).stdout
    return sorted({line.strip().lstrip("/") for line in out.splitlines() if line.strip()})


def find_qemu_ga() -> Path | None:
    """The host's qemu-guest-agent binary, copied into the guest with its libraries (None: the guest has none)."""
    return next((path for path in QEMU_GA_CANDIDATES if path.exists()), None)


def find_resize2fs() -> Path | None:
    """The build host's resize2fs (e2fsprogs), or None: the guest then keeps /data at its built size."""
    return next((p for p in RESIZE2FS_CANDIDATES if p.exists()), None)


def _shared_libraries(binary: Path) -> list[Path]:
    """The shared objects (and the dynamic loader) a binary needs, as ldd resolves them here."""
    out = subprocess.run(["ldd", str(binary)], check=True, capture_output=True, text=True).stdout
    found = []
    for line in out.splitlines():
        match = re.search(r"(/\S+) \(0x", line)
        if match:
            found.append(Path(match.group(1)))
    return found


def _add_binary(cpio: CpioWriter, binary: Path, guest_path: str | None = None) -> None:
    """A dynamically linked host binary (at guest_path, else its own) with its libraries at their own paths."""
    cpio.file((guest_path or str(binary)).lstrip("/"), binary.read_bytes(), 0o755)
    for library in _shared_libraries(binary):
        real = library.resolve()
        cpio.file(str(library).lstrip("/"), real.read_bytes(), 0o755)


def build_initramfs(
    busybox: Path, modules_dir: Path, resize2fs: Path | None = None, qemu_ga: Path | None = None
) -> bytes:
    """The gzip-compressed newc cpio initramfs (deterministic for the same inputs)."""
    raw = io.BytesIO()
    cpio = CpioWriter(raw)
    if resize2fs is not None:
        _add_binary(cpio, resize2fs)
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "run",
              "root", "data", "var/log", "etc/init.d", "etc/acpi/PWRF"):  # fmt: skip
        cpio.directory(d, 0o1777 if d == "tmp" else 0o755)
    # The kernel opens /dev/console before devtmpfs is mounted; /init's output needs it.
    cpio.char_device("dev/console", 5, 1)
    cpio.char_device("dev/null", 1, 3, 0o666)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    for applet in _busybox_applets(busybox):
        if applet != "bin/busybox":
            depth = applet.count("/")
            cpio.symlink(applet, "../" * depth + "bin/busybox")
    for name, (content, mode) in sorted(_guest_files().items()):
        cpio.file(name, content.encode(), mode)
    version = modules_dir.name
    load_list = []
    for rel in _module_order(modules_dir, GUEST_MODULES):
        dest = f"lib/modules/{version}/{rel}"
        cpio.file(dest, (modules_dir / rel).read_bytes())
        load_list.append("/" + dest)
    cpio.file("etc/modules", ("\n".join(load_list) + "\n").encode())
    if qemu_ga is not None:
        _add_binary(cpio, qemu_ga, QEMU_GA_GUEST_PATH)
    cpio.close()
    out = io.BytesIO()
    # mtime=0 keeps the archive byte-identical across builds.
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def _run(cmd: list[str], **kwargs: object) -> None:
    """Run a build tool, turning its failure into a DemoImageError with its output."""
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    except FileNotFoundError as exc:
        raise DemoImageError(f"{cmd[0]} not installed") from exc
    except subprocess.CalledProcessError as exc:
        raise DemoImageError(f"{' '.join(cmd)} failed: {exc.stderr.strip()}") from exc


def build_disk(dest: Path, size_bytes: int = DISK_SIZE_BYTES) -> None:
    """A qcow2 disk holding an ext4 filesystem (label quetzal-data) with a README."""
    with tempfile.TemporaryDirectory(prefix="quetzal-demo-disk-") as tmp:
        content = Path(tmp) / "content"
        content.mkdir()
        readme = content / DATA_README
        readme.write_text("Quetzal demo desktop data disk. Files you save in /data survive restarts.\n")
        # mkfs -d copies mtimes: pin them so the disk bytes do not depend on the build time.
        os.utime(readme, (int(_FAKE_TIME), int(_FAKE_TIME)))
        os.utime(content, (int(_FAKE_TIME), int(_FAKE_TIME)))
        raw = Path(tmp) / "disk.raw"
        with raw.open("wb") as fh:
            fh.truncate(size_bytes)
        env = {**os.environ, "E2FSPROGS_FAKE_TIME": _FAKE_TIME}
        _run(
            ["mkfs.ext4", "-q", "-F", "-L", DATA_LABEL, "-U", _DISK_UUID,
             "-E", f"hash_seed={_DISK_UUID},lazy_itable_init=0,nodiscard",
             "-d", str(content), str(raw)],
            env=env,
        )  # fmt: skip
        # mkfs -d copies the file's ctime, which utime cannot set; pin it in the filesystem.
        _run(["debugfs", "-w", "-R", f"sif /{DATA_README} ctime @{_FAKE_TIME}", str(raw)], env=env)
        with _replacing(dest) as tmp_dest:
            _run(["qemu-img", "convert", "-q", "-f", "raw", "-O", DISK_FORMAT, str(raw), str(tmp_dest)])


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A temporary sibling to fill; it replaces path on success and is removed on failure."""
    # A unique name, so concurrent builders never write into each other's file; the rename
    # means readers (a starting QEMU) never see a half-written file.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # World-readable: libvirtd's QEMU runs as an unprivileged user on most hosts.
        tmp.chmod(0o644)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _manifest_ok(dest_dir: Path, expected: dict[str, object]) -> DemoImage | None:
    """The cached image in dest_dir if its manifest matches and its files are intact."""
    manifest_path = dest_dir / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return None
    if any(manifest.get(k) != v for k, v in expected.items()):
        return None
    files = {KERNEL_NAME: "kernel_sha256", INITRD_NAME: "initrd_sha256", DISK_NAME: "disk_sha256"}
    for name, key in files.items():
        path = dest_dir / name
        if not path.is_file() or sha256_file(path) != manifest.get(key):
            return None
    return _image(dest_dir, manifest)


def _image(dest_dir: Path, manifest: dict[str, object]) -> DemoImage:
    return DemoImage(
        kernel=dest_dir / KERNEL_NAME,
        initrd=dest_dir / INITRD_NAME,
        disk=dest_dir / DISK_NAME,
        cmdline=str(manifest["cmdline"]),
        disk_sha256=str(manifest["disk_sha256"]),
        disk_format=DISK_FORMAT,
        disk_size_bytes=int(manifest["disk_size_bytes"]),  # type: ignore[call-overload]
        kernel_version=str(manifest["kernel_version"]),
        guest_agent=bool(manifest.get("qemu_ga_sha256")),
    )


def kernel_and_version(kernel: Path | None = None) -> tuple[Path, str]:
    """The kernel to boot (the host's newest when none is given) and its version."""
    if kernel is None:
        return find_kernel()
    return kernel, kernel.name.removeprefix("vmlinuz-")


def kernel_with_modules(kernel: Path | None = None) -> tuple[Path, str, Path]:
    """The kernel to boot, its version and its installed modules (which the images copy from)."""
    kernel, version = kernel_and_version(kernel)
    modules_dir = Path("/lib/modules") / version
    if not (modules_dir / "modules.dep").exists():
        raise DemoImageError(f"no modules for kernel {version} in {modules_dir}")
    return kernel, version, modules_dir


def build_demo_image(dest_dir: Path, *, kernel: Path | None = None, busybox: Path | None = None) -> DemoImage:
    """Build (or reuse) the demo image in dest_dir from installed Debian packages only."""
    dest_dir = Path(dest_dir)
    kernel, version, modules_dir = kernel_with_modules(kernel)
    busybox = busybox or find_busybox()
    resize2fs = find_resize2fs()
    qemu_ga = find_qemu_ga()
    expected: dict[str, object] = {
        "qemu_ga_sha256": sha256_file(qemu_ga) if qemu_ga else "",
        "version": IMAGE_VERSION,
        "kernel_version": version,
        "cmdline": DEMO_CMDLINE,
        "disk_size_bytes": DISK_SIZE_BYTES,
        "kernel_source_sha256": sha256_file(kernel),
        "busybox_sha256": sha256_file(busybox),
        # The guest scripts themselves, so editing one rebuilds the cache even without a version bump.
        "scripts_sha256": _scripts_sha256(),
        "resize2fs_sha256": sha256_file(resize2fs) if resize2fs else "",
    }
    dest_dir.mkdir(parents=True, exist_ok=True)
    cached = _manifest_ok(dest_dir, expected)
    if cached is not None:
        return cached

    # QEMU runs as an unprivileged user on most hosts: the image must be world-readable.
    with contextlib.suppress(OSError):
        dest_dir.chmod(dest_dir.stat().st_mode | 0o755)
    kernel_dest = dest_dir / KERNEL_NAME
    with _replacing(kernel_dest) as tmp:
        shutil.copyfile(kernel, tmp)
    with _replacing(dest_dir / INITRD_NAME) as tmp:
        tmp.write_bytes(build_initramfs(busybox, modules_dir, resize2fs, qemu_ga))
    build_disk(dest_dir / DISK_NAME)
    manifest = {
        **expected,
        "kernel_sha256": sha256_file(kernel_dest),
        "initrd_sha256": sha256_file(dest_dir / INITRD_NAME),
        "disk_sha256": sha256_file(dest_dir / DISK_NAME),
    }
    # The manifest goes last: it is what marks the directory as a complete image.
    with _replacing(dest_dir / MANIFEST_NAME) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))
    return _image(dest_dir, manifest)


def default_image_dir() -> Path:
    """Where the demo image is cached: $QUETZAL_DEMO_IMAGE_DIR, else a libvirt-readable place."""
    if env := os.environ.get("QUETZAL_DEMO_IMAGE_DIR"):
        return Path(env)
    # /var/lib/libvirt/boot is libvirt's own place for kernels, traversable by the QEMU user.
    boot = Path("/var/lib/libvirt/boot")
    if os.geteuid() == 0 and boot.is_dir():
        return boot / "quetzal-demo" / f"v{IMAGE_VERSION}"
    return Path.home() / ".cache" / "quetzal" / "demo-image" / f"v{IMAGE_VERSION}"


# ---------------------------------------------------------------------------------- serial log


_BEGIN_RE = re.compile(re.escape(SCREEN_BEGIN) + r" rows=(\d+) cols=(\d+) x=(\d+) y=(\d+)\r?$", re.MULTILINE)


@dataclass(frozen=True)
class GuestSize:
    """What the guest reported about its own size: CPUs online, MemTotal, disk bytes and /data's size."""

    cpus: int
    mem_kib: int
    disk_bytes: int
    data_kib: int


def parse_sizes(serial_text: str) -> list[GuestSize]:
    """Every size report in a serial log, oldest first."""
    pattern = re.compile(SIZE_BANNER + r" cpus=(\d+) mem_kib=(\d+) disk_bytes=(\d+) data_kib=(\d+)")
    return [GuestSize(*(int(g) for g in m.groups())) for m in pattern.finditer(serial_text)]


def parse_screens(serial_text: str) -> list[Screen]:
    """Every complete screen snapshot found in a serial log, oldest first."""
    screens: list[Screen] = []
    for match in _BEGIN_RE.finditer(serial_text):
        end = serial_text.find(SCREEN_END, match.end())
        if end < 0:
            break
        body = serial_text[match.end() : end].replace("\r", "")
        lines = body.strip("\n").split("\n") if body.strip("\n") else []
        rows, cols, x, y = (int(g) for g in match.groups())
        screens.append(Screen(rows, cols, x, y, tuple(line.rstrip() for line in lines)))
    return screens


def last_screen(serial_text: str) -> Screen | None:
    """The newest complete screen snapshot in a serial log, if any."""
    screens = parse_screens(serial_text)
    return screens[-1] if screens else None


def boot_seconds(serial_text: str) -> float | None:
    """Guest uptime when the shell on tty1 started, as reported with the READY banner."""
    match = re.search(re.escape(READY_BANNER) + r" ([\d.]+)", serial_text)
    return float(match.group(1)) if match else None


# ------------------------------------------------------------------------------------------ kvm

# /dev/kvm can exist while nested virtualisation is broken or crawling (guests hang at "Booting
# from ROM", or decompress the kernel at a few hundred KB/s), so the probe runs guest code
# through the raw KVM ioctls: a real-mode loop of one million memory increments, then HLT. With
# working KVM it takes ~2 ms; where every guest memory write traps it takes over a second. TCG
# itself needs ~10 ms, so anything slower than _KVM_MAX_LOOP_S is worse than no KVM at all.
_KVM_MAX_LOOP_S = 0.2
_KVM_PROBE = r"""
import ctypes, fcntl, mmap, os, struct, sys, time
KVM_GET_API_VERSION, KVM_CREATE_VM, KVM_GET_VCPU_MMAP_SIZE = 0xAE00, 0xAE01, 0xAE04
KVM_CREATE_VCPU, KVM_RUN = 0xAE41, 0xAE80
KVM_SET_USER_MEMORY_REGION = 0x4020AE46
KVM_GET_SREGS, KVM_SET_SREGS = 0x8138AE83, 0x4138AE84
KVM_SET_REGS = 0x4090AE82
KVM_EXIT_HLT, KVM_EXIT_INTR = 5, 10
kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
if fcntl.ioctl(kvm, KVM_GET_API_VERSION) != 12:
    sys.exit(3)
vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
mem = mmap.mmap(-1, 0x3000)
# mov ecx, 1000000 / inc word [0x2000] / loop (ecx) back / hlt
code = b"\x66\xb9" + struct.pack("<I", 1000000) + b"\xff\x06\x00\x20\x67\xe2\xf9\xf4"
mem[0x1000 : 0x1000 + len(code)] = code
addr = ctypes.addressof(ctypes.c_char.from_buffer(mem))
fcntl.ioctl(vm, KVM_SET_USER_MEMORY_REGION, struct.pack("IIQQQ", 0, 0, 0, 0x3000, addr))
vcpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
size = fcntl.ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE)
run = mmap.mmap(vcpu, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
sregs = bytearray(312)
fcntl.ioctl(vcpu, KVM_GET_SREGS, sregs)
struct.pack_into("Q", sregs, 0, 0)  # cs.base = 0 (reset value is 0xffff0000)
struct.pack_into("H", sregs, 12, 0)  # cs.selector = 0
fcntl.ioctl(vcpu, KVM_SET_SREGS, bytes(sregs))
regs = bytearray(144)
struct.pack_into("QQ", regs, 128, 0x1000, 0x2)  # rip, rflags
fcntl.ioctl(vcpu, KVM_SET_REGS, bytes(regs))
start = time.perf_counter()
while True:
    fcntl.ioctl(vcpu, KVM_RUN, 0)
    reason = struct.unpack_from("I", run, 8)[0]
    if reason != KVM_EXIT_INTR:
        break
elapsed = time.perf_counter() - start
print(f"exit={reason} seconds={elapsed:.4f} counter={struct.unpack_from('<H', mem, 0x2000)[0]}")
sys.exit(0 if reason == KVM_EXIT_HLT else 4)
"""


def kvm_probe(timeout_s: float = 5.0) -> tuple[bool, str]:
    """Whether KVM runs guest code at native speed here, and what the probe saw."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm missing or not accessible"
    try:
        proc = subprocess.run([sys.executable, "-c", _KVM_PROBE], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False, f"KVM guest did not halt within {timeout_s}s"
    detail_text = proc.stdout.strip() or (proc.stderr.strip().splitlines() or ["?"])[-1]
    if proc.returncode != 0:
        return False, f"KVM probe failed: {detail_text}"
    match = re.search(r"seconds=([\d.]+)", proc.stdout)
    if not match or float(match.group(1)) > _KVM_MAX_LOOP_S:
        return False, f"KVM too slow (nested virtualisation?): {detail_text}"
    return True, detail_text


def kvm_works(timeout_s: float = 5.0) -> bool:
    """Whether to use virt type 'kvm' on this host (else 'qemu', i.e. TCG software emulation)."""
    return kvm_probe(timeout_s)[0]


__all__ = [
    "DATA_LABEL",
    "DATA_README",
    "DEMO_CMDLINE",
    "DISK_FORMAT",
    "DISK_SIZE_BYTES",
    "HOME_BANNER",
    "HOME_SERIAL_PREFIX",
    "NET_BANNER",
    "POWEROFF_BANNER",
    "PROBE_BANNER",
    "PROMPT",
    "READY_BANNER",
    "SCREEN_BEGIN",
    "SCREEN_END",
    "DemoImage",
    "DemoImageError",
    "Screen",
    "boot_seconds",
    "build_demo_image",
    "build_initramfs",
    "default_image_dir",
    "find_busybox",
    "find_kernel",
    "kvm_probe",
    "kvm_works",
    "last_screen",
    "parse_screens",
    "read_cpio_names",
]
