"""Kernel same-page merging on the machine this runs on: libvirt can read KSM but cannot switch it on remotely.

manage.py enrol_host calls this when it runs on the host itself, as root; scripts/start-libvirtd does the same
with MERGE_MEMORY_PAGES=1. No Django here.
"""

from __future__ import annotations

import os
from pathlib import Path

KSM_DIR = Path("/sys/kernel/mm/ksm")


def switch_on(ksm_dir: Path = KSM_DIR) -> str:
    """Write 1 to KSM's run file; a sentence saying what happened (nothing is raised: enrolment goes on)."""
    run = ksm_dir / "run"
    if not run.exists():
        return "this kernel has no KSM (no /sys/kernel/mm/ksm/run); memory pages are not merged"
    try:
        if run.read_text().strip() == "1":
            return "KSM already merges identical memory pages here"
        run.write_text("1\n")
    except OSError as exc:
        who = "root" if os.geteuid() == 0 else "not root"
        return f"cannot switch KSM on ({who}): {exc.strerror or exc}; write 1 to {run} on the host"
    return "KSM switched on: identical memory pages are merged from now on (until reboot: make it persistent)"
