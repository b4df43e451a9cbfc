"""The graphical demo desktop: Debian bookworm with X, jwm, xterm and dillo on an ext4 root disk.

Built with mmdebstrap from the Debian package mirror only (no loop mounts: the filesystem is made by
`mkfs.ext4 -d` inside mmdebstrap's own hook, so it also works as a non-root user in --mode=unshare),
booted directly with the host's Debian kernel and a small busybox initramfs that switch_roots into
systemd. The guest prints READY_LINE on its serial port once the window manager and the terminal are
mapped: that is how Quetzal knows the desktop is ready for input.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shlex
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from hosts.checksums import sha256_file
from hosts.demo_image import (
    _HOME_WATCH,
    HOME_BANNER,
    HOME_SERIAL_PREFIX,
    CpioWriter,
    DemoImage,
    DemoImageError,
    _busybox_applets,
    _module_order,
    _replacing,
    _run,
    default_image_dir,
    find_busybox,
    kernel_and_version,
    kernel_with_modules,
)

# Bump whenever the guest files, the trimming or the layout change (the packages are hashed as they are).
# Each version is cached in its own directory (default_graphical_dir), as the text demo's are.
# 3: the person's home disk is mounted on /data (as in the text demo) and qemu-guest-agent reaches it.
# 4: the clipboard daemon restarts when its port comes back, each start reconnects the session agent, and
#    what was copied while no agent listened is offered again.
GRAPHICAL_VERSION = 4

READY_LINE = "QUETZAL-READY"
ROOT_LINE = "QUETZAL-ROOT-KIB"
SAY_LINE = "QUETZAL-SAY"
PASTE_LINE = "QUETZAL-PASTE"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
ROOT_LABEL = "quetzal-root"
# The ext4 root's size; the desktop's disk (a qcow2 overlay of the template's size) must not be smaller.
ROOT_SIZE_BYTES = 1536 * 1024 * 1024
TEMPLATE_DISK_GIB = 2

PACKAGES = (
    "systemd-sysv", "udev", "kmod", "dbus",
    "xserver-xorg-core", "xserver-xorg-input-libinput", "xinit", "x11-xserver-utils", "x11-utils",
    "jwm", "xterm", "dillo", "fonts-dejavu-core", "xfonts-base",
    "alsa-utils", "spice-vdagent", "qemu-guest-agent", "xclip", "procps",
)  # fmt: skip

# /dev/console follows the last console=: the serial port, so boot messages stay off the screen.
# no_timer_check: on a busy host, software emulation is slow enough for the kernel's IO-APIC timer check to
# fail and panic ("IO-APIC + timer doesn't work!"), which was seen here under load.
# The command line is not in any file of the image, so it is not part of the recipe: changing it rebuilds nothing.
CMDLINE = (
    "console=tty1 console=ttyS0,115200 root=/dev/vda rw quiet loglevel=3 no_timer_check "
    "systemd.show_status=false rd.udev.log_level=3 vt.global_cursor_default=0"
)

# The initramfs only needs to find and mount the root disk.
INITRD_MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "ext4")
# What the running desktop needs from the host kernel (dependencies follow from modules.dep):
# the std-VGA DRM driver, HDA sound, the clipboard channel and uinput for spice-vdagent, USB tablet.
ROOT_MODULES = (
    *INITRD_MODULES,
    "virtio_net", "virtio_console", "virtio_balloon", "virtio_rng", "virtio_input", "bochs",
    "snd_hda_intel", "snd_hda_codec_generic", "uinput", "evdev", "usbhid", "hid_generic",
    "uhci_hcd", "ehci_pci", "xhci_pci", "button", "psmouse", "qemu_fw_cfg",
)  # fmt: skip

# Dropped after installation: documentation, the apt state, and Mesa/LLVM (the modesetting driver
# runs with AccelMethod none, so nothing loads them). Roughly halves the image.
TRIM_PATHS = (
    "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian",
    "var/cache/apt", "var/lib/apt/lists", "var/cache/debconf/templates.dat-old", "var/log/*.log",
    "usr/lib/x86_64-linux-gnu/dri", "usr/lib/x86_64-linux-gnu/libLLVM-*", "usr/lib/x86_64-linux-gnu/libz3.so*",
    "usr/share/icons/Adwaita/[0-9]*", "usr/share/icons/Adwaita/cursors",
)  # fmt: skip

KERNEL_NAME = "vmlinuz"
INITRD_NAME = "initrd.img"
DISK_NAME = "disk.qcow2"
MANIFEST_NAME = "demo-graphical.json"

# ------------------------------------------------------------------------------------ initramfs

_INITRD_INIT = """#!/bin/sh
# PID 1 of the initramfs: load the disk drivers, mount the root disk, hand over to systemd.
export PATH=/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r ko; do insmod "$ko" 2>/dev/null; done < /etc/modules
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mkdir -p /newroot
if ! mount -t ext4 -o rw,noatime /dev/vda /newroot; then
    echo "quetzal: cannot mount the root disk /dev/vda" > /dev/ttyS0
    exec sh
fi
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
"""


def build_initramfs(busybox: Path, modules_dir: Path) -> bytes:
    """A gzip newc initramfs: busybox and the modules that reach the root disk (deterministic)."""
    raw = io.BytesIO()
    cpio = CpioWriter(raw)
    for d in ("bin", "sbin", "dev", "proc", "sys", "newroot", "etc"):
        cpio.directory(d)
    cpio.char_device("dev/console", 5, 1)
    cpio.char_device("dev/null", 1, 3, 0o666)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    for applet in _busybox_applets(busybox):
        top = applet.split("/")[0]
        if top in ("bin", "sbin") and applet.count("/") == 1 and applet != "bin/busybox":
            cpio.symlink(applet, "../bin/busybox")
    cpio.file("init", _INITRD_INIT.encode(), 0o755)
    version = modules_dir.name
    load_list = []
    for rel in _module_order(modules_dir, INITRD_MODULES):
        dest = f"lib/modules/{version}/{rel}"
        cpio.file(dest, (modules_dir / rel).read_bytes())
        load_list.append("/" + dest)
    cpio.file("etc/modules", ("\n".join(load_list) + "\n").encode())
    cpio.close()
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


# ------------------------------------------------------------------------------------ guest files

_SESSION_UNIT = """[Unit]
Description=Quetzal demo desktop session (X, jwm, xterm)
After=systemd-user-sessions.service dbus.service
Conflicts=getty@tty1.service

[Service]
Environment=HOME=/root
WorkingDirectory=/root
ExecStart=/usr/bin/xinit /etc/quetzal/session -- /usr/lib/xorg/Xorg :0 vt1 -nolisten tcp -noreset -keeptty -novtswitch
Restart=always
RestartSec=1

[Install]
WantedBy=graphical.target
"""

_XORG_CONF = """# std VGA through bochs-drm; no GPU acceleration under emulation (and no Mesa in the image).
Section "Device"
    Identifier "card0"
    Driver "modesetting"
    Option "AccelMethod" "none"
EndSection
Section "ServerFlags"
    Option "BlankTime" "0"
    Option "StandbyTime" "0"
    Option "SuspendTime" "0"
    Option "OffTime" "0"
EndSection
"""

_SESSION = """#!/bin/sh
# The X session: background, clipboard agent, window manager, one terminal, then report readiness.
xsetroot -solid '#1f3a4d'
xset s off -dpms
# The clipboard channel is unplugged while the VM's memory is saved (hosts/hypervisor/libvirt_vdagent.py):
# the session agent exits with its daemon then, and starts again. The agent offers only what is copied after
# it connected, so text copied while it was away (the seconds after a wake-up) is copied again, as text, once
# it has had time to connect, and again later for a slow connect.
(while :; do
    spice-vdagent -x 2>/dev/null &
    agent=$!
    for wait in 2 4; do
        sleep $wait
        text=$(xclip -selection clipboard -o 2>/dev/null) && [ -n "$text" ] \
            && printf %s "$text" | xclip -selection clipboard -i
    done
    wait $agent
    sleep 1
done) &
jwm &
wm=$!
xterm -geometry 80x24+60+60 -title Terminal -fa 'DejaVu Sans Mono' -fs 11 &
/usr/local/sbin/quetzal-ready &
wait $wm
"""

# Ready means: the window manager owns the screen (it set _NET_SUPPORTING_WM_CHECK) and the
# terminal's window is viewable. Printed once per session with the guest's uptime.
_READY = """#!/bin/sh
i=0
while [ $i -lt 600 ]; do
    if xprop -root _NET_SUPPORTING_WM_CHECK 2>/dev/null | grep -q 'window id' \\
        && xwininfo -name Terminal 2>/dev/null | grep -q IsViewable; then
        echo "__READY__ $(cut -d' ' -f1 /proc/uptime)" > /dev/ttyS0
        exit 0
    fi
    sleep 0.2
    i=$((i + 1))
done
"""

# A desktop's disk is the template's size (or a bigger custom size), the image's filesystem ROOT_SIZE_BYTES: grow
# it to the disk at every boot (online, a no-op once it fits) and say on the serial port how big it is now.
_GROW_ROOT_UNIT = """[Unit]
Description=Grow the root filesystem to its disk

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/quetzal-grow-root

[Install]
WantedBy=multi-user.target
"""
_GROW_ROOT = """#!/bin/sh
resize2fs /dev/vda >/dev/null 2>&1
echo "__ROOT__ $(df -k --output=size / | tail -n 1 | tr -d ' ')" > /dev/ttyS0
"""

# The person's home disk is hot-plugged at any time: the text demo's watcher mounts it on /data (where the
# portal's file manager looks for it through the guest agent); ~/Home in the terminal leads there.
_HOME_UNIT = """[Unit]
Description=Mount the person's home disk on /data when it is plugged in

[Service]
ExecStart=/usr/local/sbin/quetzal-home
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
"""

# `qz-say WORD` prints WORD on the serial port: typed in the terminal, it proves input arrived.
_SAY = """#!/bin/sh
echo "__SAY__ $*" > /dev/ttyS0
"""

# `qz-copy WORDS` puts WORDS on the desktop's clipboard; `qz-paste` prints the clipboard on the serial port.
_COPY = """#!/bin/sh
printf %s "$*" | DISPLAY=${DISPLAY:-:0} xclip -selection clipboard -i
"""
_PASTE = """#!/bin/sh
echo "__PASTE__ $(DISPLAY=${DISPLAY:-:0} xclip -selection clipboard -o 2>/dev/null)" > /dev/ttyS0
"""

# `qz-tone [HZ] [SECONDS]`: a sine tone on the sound card, for the audio tests.
_TONE = """#!/bin/sh
exec timeout "${2:-5}" speaker-test -t sine -f "${1:-440}" -c 2 -r 48000 -l 0 >/dev/null 2>&1
"""

# The daemon allows one session agent when it runs without logind (-X): an agent that connected while the
# daemon restarted (its loop in the session retries every second) could be the one left out, and the clipboard
# went silent after a hibernation. So every start of the daemon ends the session agent it may have raced
# with; the session's loop starts a new one against this daemon a second later.
_VDAGENTD_DROPIN = """[Unit]
StartLimitIntervalSec=0

[Service]
Restart=always
RestartSec=1
ExecStartPost=-/usr/bin/pkill -x spice-vdagent
"""

# The port comes back when Quetzal plugs the channel in again (after a hibernation or a move): a daemon that
# lost it does not reopen it by itself, so the port's arrival restarts it.
_VDAGENT_UDEV = (
    'ACTION=="add", SUBSYSTEM=="virtio-ports", ATTR{name}=="com.redhat.spice.0", '
    'RUN+="/bin/systemctl --no-block restart spice-vdagentd.service"\n'
)

_JWMRC = """<?xml version="1.0"?>
<JWM>
    <Tray x="0" y="-1" height="28" autohide="off">
        <TrayButton label="Terminal">exec:xterm -title Terminal</TrayButton>
        <TrayButton label="Browser">exec:dillo</TrayButton>
        <Spacer width="8"/>
        <TaskList maxwidth="200"/>
        <Clock format="%H:%M"/>
    </Tray>
    <RootMenu onroot="13">
        <Program label="Terminal">xterm -title Terminal</Program>
        <Program label="Web browser">dillo</Program>
    </RootMenu>
    <FocusModel>click</FocusModel>
    <Desktops width="1" height="1"/>
</JWM>
"""


def guest_files() -> dict[str, tuple[str, int]]:
    """Files laid over the installed system: path -> (content, mode)."""
    return {
        "etc/systemd/system/quetzal-desktop.service": (_SESSION_UNIT, 0o644),
        "etc/X11/xorg.conf.d/10-quetzal.conf": (_XORG_CONF, 0o644),
        "etc/quetzal/session": (_SESSION, 0o755),
        "usr/local/sbin/quetzal-ready": (_READY.replace("__READY__", READY_LINE), 0o755),
        "etc/systemd/system/quetzal-grow-root.service": (_GROW_ROOT_UNIT, 0o644),
        "usr/local/sbin/quetzal-grow-root": (_GROW_ROOT.replace("__ROOT__", ROOT_LINE), 0o755),
        "etc/systemd/system/quetzal-home.service": (_HOME_UNIT, 0o644),
        "usr/local/sbin/quetzal-home": (
            _HOME_WATCH.replace("__PREFIX__", HOME_SERIAL_PREFIX).replace("__BANNER__", HOME_BANNER),
            0o755,
        ),
        "usr/local/bin/qz-say": (_SAY.replace("__SAY__", SAY_LINE), 0o755),
        "usr/local/bin/qz-tone": (_TONE, 0o755),
        "usr/local/bin/qz-copy": (_COPY, 0o755),
        "usr/local/bin/qz-paste": (_PASTE.replace("__PASTE__", PASTE_LINE), 0o755),
        "root/.jwmrc": (_JWMRC, 0o644),
        "etc/hostname": ("quetzal-desktop\n", 0o644),
        "etc/hosts": ("127.0.0.1 localhost\n127.0.1.1 quetzal-desktop\n", 0o644),
        "etc/fstab": (f"LABEL={ROOT_LABEL} / ext4 rw,noatime 0 1\n", 0o644),
        # spice-vdagentd must not wait for a logind seat: the session is started by a unit, not a login.
        "etc/default/spice-vdagentd": ("SPICE_VDAGENTD_EXTRA_ARGS=-X\n", 0o644),
        # ...and must come back when the port does (after a hibernation or a move): never give up restarting.
        "etc/systemd/system/spice-vdagentd.service.d/quetzal.conf": (_VDAGENTD_DROPIN, 0o644),
        "etc/udev/rules.d/71-quetzal-vdagent.rules": (_VDAGENT_UDEV, 0o644),
        "etc/modules-load.d/quetzal.conf": ("uinput\nvirtio_console\n", 0o644),
        "etc/asound.conf": ("defaults.pcm.card 0\ndefaults.ctl.card 0\n", 0o644),
        "etc/systemd/journald.conf.d/quetzal.conf": ("[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n", 0o644),
    }


# ------------------------------------------------------------------------------------ the recipe


def recipe(*, kernel: Path, kernel_version: str, busybox: Path, suite: str = SUITE) -> dict[str, object]:
    """Everything the image is made from; its hash names the cache entry."""
    files = hashlib.sha256(json.dumps(guest_files(), sort_keys=True).encode())
    files.update(_INITRD_INIT.encode())
    return {
        "version": GRAPHICAL_VERSION,
        "suite": suite,
        "packages": sorted(PACKAGES),
        "trim": list(TRIM_PATHS),
        "root_modules": list(ROOT_MODULES),
        "root_size_bytes": ROOT_SIZE_BYTES,
        "guest_files_sha256": files.hexdigest(),
        "kernel_version": kernel_version,
        "kernel_source_sha256": sha256_file(kernel),
        "busybox_sha256": sha256_file(busybox),
    }


def recipe_hash(recipe_: dict[str, object]) -> str:
    """A stable hash of a recipe."""
    return hashlib.sha256(json.dumps(recipe_, sort_keys=True).encode()).hexdigest()


def current_recipe(kernel: Path | None = None, busybox: Path | None = None) -> dict[str, object]:
    """The recipe this machine would build now (host kernel and busybox included)."""
    kernel, version = kernel_and_version(kernel)
    return recipe(kernel=kernel, kernel_version=version, busybox=busybox or find_busybox())


# ------------------------------------------------------------------------------------ the build


def _overlay(dest: Path, modules_dir: Path) -> None:
    """The tree copied over the installed system: our files and the host kernel's needed modules."""
    for name, (content, mode) in guest_files().items():
        path = dest / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        path.chmod(mode)
    version = modules_dir.name
    target = dest / "usr/lib/modules" / version
    for rel in _module_order(modules_dir, ROOT_MODULES):
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(modules_dir / rel, target / rel)
    for name in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
        if (modules_dir / name).exists():
            shutil.copyfile(modules_dir / name, target / name)


def _customize_script(*, raw: Path, view: Path, version: str) -> str:
    """The mmdebstrap customize hook ($1 is the new root): enable the session, trim, make the ext4 disk."""
    trim = " ".join(f'"$1"/{p}' for p in TRIM_PATHS)
    q = shlex.quote
    return "\n".join(
        [
            "set -e",
            f'chroot "$1" depmod {q(version)}',
            'chroot "$1" systemctl enable quetzal-desktop.service quetzal-grow-root.service quetzal-home.service'
            " >/dev/null 2>&1",
            'mkdir -p "$1"/data && ln -sfn /data "$1"/root/Home',
            'chroot "$1" systemctl set-default graphical.target >/dev/null 2>&1',
            # Nothing logs in on tty1 or the serial port: the serial port is the readiness channel.
            'chroot "$1" systemctl mask getty@tty1.service serial-getty@ttyS0.service'
            " systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1",
            ': > "$1"/etc/machine-id',
            f"rm -rf {trim}",
            f"truncate -s {ROOT_SIZE_BYTES} {q(str(raw))}",
            # A plain (non-recursive) bind mount shows the tree without the /proc, /sys and /dev that
            # mmdebstrap mounted into it while hooks run: mkfs must copy files, not the live kernel.
            f'mkdir -p {q(str(view))} && mount --bind "$1" {q(str(view))}',
            f"mkfs.ext4 -q -F -L {ROOT_LABEL} -E lazy_itable_init=0,nodiscard -d {q(str(view))} {q(str(raw))}"
            f" || {{ umount {q(str(view))}; exit 1; }}",
            f"umount {q(str(view))}",
        ]
    )


def _mmdebstrap(*, overlay: Path, raw: Path, version: str, mirror: str, apt_cache: Path, suite: str) -> None:
    """Install the packages into a scratch root and turn it into the ext4 image at raw."""
    if shutil.which("mmdebstrap") is None:
        raise DemoImageError("mmdebstrap not installed: apt-get install mmdebstrap")
    apt_cache.mkdir(parents=True, exist_ok=True)
    q = shlex.quote
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as hook:
        hook.write(_customize_script(raw=raw, view=raw.parent / "rootview", version=version))
    try:
        cmd = [
            "mmdebstrap",
            "--mode=auto",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            "--aptopt=APT::Install-Recommends false",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--dpkgopt=path-include=/usr/share/locale/locale.alias",
            "--skip=essential/unlink",
            # The downloaded .debs are kept between builds: a rebuild after a recipe change is quick.
            '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
            f"--setup-hook=sync-in {q(str(apt_cache))} /var/cache/apt/archives/",
            f"--customize-hook=sync-out /var/cache/apt/archives {q(str(apt_cache))}",
            f"--customize-hook=sync-in {q(str(overlay))} /",
            f'--customize-hook=sh {q(hook.name)} "$1"',
            suite,
            "/dev/null",
            mirror,
        ]
        _run(cmd)
    finally:
        os.unlink(hook.name)


def _manifest_ok(dest_dir: Path, expected_hash: str) -> DemoImage | None:
    """The cached image if it was built from this recipe and its files are intact."""
    try:
        manifest = json.loads((dest_dir / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("recipe_sha256") != expected_hash:
        return None
    for name, key in ((KERNEL_NAME, "kernel_sha256"), (INITRD_NAME, "initrd_sha256"), (DISK_NAME, "disk_sha256")):
        path = dest_dir / name
        if not path.is_file() or sha256_file(path) != manifest.get(key):
            return None
    return _image(dest_dir, manifest)


def _image(dest_dir: Path, manifest: dict) -> DemoImage:
    return DemoImage(
        kernel=dest_dir / KERNEL_NAME,
        initrd=dest_dir / INITRD_NAME,
        disk=dest_dir / DISK_NAME,
        cmdline=CMDLINE,
        disk_sha256=str(manifest["disk_sha256"]),
        disk_format="qcow2",
        disk_size_bytes=int(manifest["root_size_bytes"]),
        kernel_version=str(manifest["kernel_version"]),
        # qemu-guest-agent is one of PACKAGES: the file manager reaches a running desktop's home through it.
        guest_agent=True,
    )


def cached_graphical_image(dest_dir: Path) -> DemoImage | None:
    """The image in dest_dir if it matches what this machine would build now (no building)."""
    try:
        return _manifest_ok(Path(dest_dir), recipe_hash(current_recipe()))
    except DemoImageError:
        return None


def build_graphical_image(
    dest_dir: Path,
    *,
    kernel: Path | None = None,
    busybox: Path | None = None,
    mirror: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> DemoImage:
    """Build (or reuse, when the recipe is unchanged) the graphical demo image in dest_dir."""
    dest_dir = Path(dest_dir)
    say = progress or (lambda _msg: None)
    kernel, version, modules_dir = kernel_with_modules(kernel)
    busybox = busybox or find_busybox()
    wanted = recipe(kernel=kernel, kernel_version=version, busybox=busybox)
    digest = recipe_hash(wanted)
    dest_dir.mkdir(parents=True, exist_ok=True)
    cached = _manifest_ok(dest_dir, digest)
    if cached is not None:
        say(f"graphical image up to date (recipe {digest[:12]})")
        return cached
    with contextlib.suppress(OSError):
        dest_dir.chmod(dest_dir.stat().st_mode | 0o755)
    mirror = mirror or os.environ.get("QUETZAL_DEBIAN_MIRROR") or DEFAULT_MIRROR
    with tempfile.TemporaryDirectory(prefix="quetzal-graphical-", dir=dest_dir) as tmp:
        work = Path(tmp)
        # mmdebstrap's unshare mode runs the hook as a mapped user: it must be able to write here.
        work.chmod(0o777)
        overlay = work / "overlay"
        _overlay(overlay, modules_dir)
        raw = work / "root.raw"
        say(f"installing {len(PACKAGES)} Debian packages from {mirror} ({SUITE})")
        _mmdebstrap(
            overlay=overlay, raw=raw, version=version, mirror=mirror, apt_cache=dest_dir / "apt-cache", suite=SUITE
        )
        say("compressing the root disk")
        with _replacing(dest_dir / DISK_NAME) as tmp_disk:
            _run(["qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", str(raw), str(tmp_disk)])
    with _replacing(dest_dir / KERNEL_NAME) as tmp_kernel:
        shutil.copyfile(kernel, tmp_kernel)
    with _replacing(dest_dir / INITRD_NAME) as tmp_initrd:
        tmp_initrd.write_bytes(build_initramfs(busybox, modules_dir))
    manifest = {
        **wanted,
        "recipe_sha256": digest,
        "kernel_sha256": sha256_file(dest_dir / KERNEL_NAME),
        "initrd_sha256": sha256_file(dest_dir / INITRD_NAME),
        "disk_sha256": sha256_file(dest_dir / DISK_NAME),
        "disk_file_bytes": (dest_dir / DISK_NAME).stat().st_size,
    }
    with _replacing(dest_dir / MANIFEST_NAME) as tmp_manifest:
        tmp_manifest.write_text(json.dumps(manifest, indent=2))
    say(f"graphical image built: {manifest['disk_file_bytes'] / 1e6:.0f} MB compressed (recipe {digest[:12]})")
    return _image(dest_dir, manifest)


def default_graphical_dir() -> Path:
    """Where the graphical image is cached: $QUETZAL_DEMO_GRAPHICAL_DIR, else beside the text demo's versions.

    One directory per GRAPHICAL_VERSION (as the text demo keeps one per IMAGE_VERSION), and not under the text
    demo's version: a new text demo must not cost minutes of rebuilding the unchanged graphical one.
    """
    if env := os.environ.get("QUETZAL_DEMO_GRAPHICAL_DIR"):
        return Path(env)
    text = default_image_dir()
    if os.environ.get("QUETZAL_DEMO_IMAGE_DIR"):
        return text.parent / f"{text.name}-graphical-v{GRAPHICAL_VERSION}"
    return text.parent / f"graphical-v{GRAPHICAL_VERSION}"


def root_kib(serial_text: str) -> int | None:
    """The size of the guest's root filesystem (KiB) as it reported it after growing it to its disk."""
    for line in serial_text.splitlines():
        if line.startswith(ROOT_LINE + " "):
            with contextlib.suppress(ValueError, IndexError):
                return int(line.split()[1])
    return None


def ready_seconds(serial_text: str) -> float | None:
    """Guest uptime when the desktop reported ready on its serial port."""
    for line in serial_text.splitlines():
        if line.startswith(READY_LINE + " "):
            with contextlib.suppress(ValueError):
                return float(line.split()[1])
    return None
