"""Cloud-init NoCloud seed ISOs: a desktop's first-boot configuration."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import pycdlib


@dataclass(frozen=True)
class SeedConfig:
    """What the guest learns at first boot."""

    instance_id: str
    hostname: str
    username: str = ""
    password: str = ""
    ssh_key: str = ""
    packages: tuple[str, ...] = ()
    # The disk is larger than the image it was cloned from: grow the root partition and filesystem into it.
    # cloud-init runs both at every boot, so a disk grown later is taken up at the guest's next boot.
    grow_root: bool = False

    def user_data(self) -> str:
        """The #cloud-config document (JSON is valid YAML, so no YAML library is needed)."""
        config: dict = {"hostname": self.hostname, "preserve_hostname": False}
        if self.username:
            user: dict = {
                "name": self.username,
                "shell": "/bin/bash",
                "groups": ["sudo"],
                "lock_passwd": not self.password,
            }
            if self.ssh_key:
                user["ssh_authorized_keys"] = [self.ssh_key]
            config["users"] = ["default", user]
            if self.password:
                config["chpasswd"] = {"expire": False, "users": [{"name": self.username, "password": self.password}]}
                config["ssh_pwauth"] = True
        if self.packages:
            config["packages"] = list(self.packages)
        if self.grow_root:
            config["growpart"] = {"mode": "auto", "devices": ["/"]}
            config["resize_rootfs"] = True
        return "#cloud-config\n" + json.dumps(config, indent=2) + "\n"

    def meta_data(self) -> str:
        return json.dumps({"instance-id": self.instance_id, "local-hostname": self.hostname}) + "\n"


def build_seed_iso(config: SeedConfig) -> bytes:
    """An ISO 9660 image labelled `cidata` holding user-data and meta-data."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    for name, text in (("user-data", config.user_data()), ("meta-data", config.meta_data())):
        data = text.encode()
        iso_name = "/" + name.replace("-", "").upper()[:8] + ".;1"
        iso.add_fp(io.BytesIO(data), len(data), iso_name, rr_name=name, joliet_path="/" + name)
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()
