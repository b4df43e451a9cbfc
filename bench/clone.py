"""A desktop disk from a 1 GiB image: qcow2 linked clone vs full copy."""

# Uses the libvirt driver against qemu:///system when it answers (the base image is uploaded into
# the `default` pool through volume streams, as Quetzal does), else qemu-img directly in a
# temporary directory. Prints the figures and, last,
# `linked_clone_s=<float> full_copy_s=<float> ratio=<float>`.

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GIB = 1024**3


def run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def make_base(path: Path, size_bytes: int) -> None:
    """A qcow2 whose every cluster holds data, so a full copy has real bytes to move."""
    raw = path.with_suffix(".raw")
    with raw.open("wb") as handle:
        chunk = os.urandom(4 * 1024 * 1024)
        for _ in range(size_bytes // len(chunk)):
            handle.write(chunk)
    run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(path))
    raw.unlink()


def drop_caches() -> bool:
    """Flush dirty pages and, when allowed, the page cache, so the copy reads from disk."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def qemu_hypervisor(uri: str):
    """The driver for uri if libvirtd answers and has a `default` pool, else None."""
    try:
        from hosts.hypervisor import HypervisorError, get_hypervisor

        hypervisor = get_hypervisor(uri)
        hypervisor.pool_path("default")
    except (ImportError, HypervisorError) as exc:
        print(f"# {uri} not usable ({exc}); using qemu-img directly")
        return None
    return hypervisor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--uri", default="qemu:///system")
    parser.add_argument("--no-libvirt", action="store_true", help="use qemu-img only")
    args = parser.parse_args()
    if shutil.which("qemu-img") is None:
        sys.exit("qemu-img is required (apt-get install qemu-utils)")

    workdir = Path(tempfile.mkdtemp(prefix="quetzal-clone-bench-"))
    base = workdir / "base.qcow2"
    size = int(args.size_gib * GIB)
    print(f"making a {args.size_gib:g} GiB qcow2 base image full of data ...")
    make_base(base, size)
    print(f"base image {base.stat().st_size / GIB:.2f} GiB on disk")
    hypervisor = None if args.no_libvirt else qemu_hypervisor(args.uri)
    tag = uuid.uuid4().hex[:8]
    volumes: list[str] = []
    linked, full = [], []
    try:
        if hypervisor is not None:
            pool = "default"
            base_volume = f"bench-{tag}-base.qcow2"
            volumes.append(base_volume)
            upload_s = timed(lambda: hypervisor.volume_upload(pool, base_volume, str(base), "qcow2"))
            base_path = hypervisor.volume_path(pool, base_volume)
            target_dir = Path(hypervisor.pool_path(pool))
            print(f"mode=libvirt uri={args.uri} upload_s={upload_s:.2f} (volume streams)")
        else:
            base_path, target_dir = str(base), workdir
            print("mode=qemu-img")
        cache_dropped = True
        for n in range(args.rounds):
            clone = f"bench-{tag}-linked-{n}.qcow2"
            copy = target_dir / f"bench-{tag}-full-{n}.qcow2"
            cache_dropped &= drop_caches()
            if hypervisor is not None:
                volumes.append(clone)
                linked.append(
                    timed(
                        lambda clone=clone: hypervisor.volume_create_linked_clone(
                            "default", clone, base_path, "qcow2", capacity_bytes=size
                        )
                    )
                )
            else:
                target = str(workdir / clone)
                linked.append(
                    timed(
                        lambda target=target: run(
                            "qemu-img", "create", "-q", "-f", "qcow2", "-b", base_path, "-F", "qcow2", target
                        )
                    )
                )
            cache_dropped &= drop_caches()
            # What a full clone does (virt-clone, libvirt vol-clone): read and write every cluster.
            full.append(
                timed(lambda copy=copy: run("qemu-img", "convert", "-f", "qcow2", "-O", "qcow2", base_path, str(copy)))
            )
            with contextlib.suppress(FileNotFoundError):
                copy.unlink()
            print(f"round {n + 1}: linked_clone_s={linked[-1]:.4f} full_copy_s={full[-1]:.2f}")
        print(f"page cache dropped before each: {'yes' if cache_dropped else 'no (not permitted)'}")
    finally:
        if hypervisor is not None:
            for volume in volumes:
                hypervisor.volume_delete("default", volume)
        shutil.rmtree(workdir, ignore_errors=True)
    linked_s, full_s = statistics.median(linked), statistics.median(full)
    print(f"linked_clone_s={linked_s:.4f} full_copy_s={full_s:.3f} ratio={full_s / linked_s:.1f}")


if __name__ == "__main__":
    main()
