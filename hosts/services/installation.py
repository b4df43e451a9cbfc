"""Which Quetzal installation this is, as the domains it makes say (hosts.hypervisor.DesktopMetadata).

Several installations may share a libvirt host: a staging and a production, or a test run and a benchmark beside
`make run` on a developer's machine. Each names its domains, and reconcile takes for orphans only its own (and
unnamed ones, made before installations were named), never another installation's desktops.

The name is QUETZAL_INSTALLATION_ID when set, else derived from the database the installation keeps its desktops in
(its name: every process of one installation, web, workers and beat, reads the same one; a test run's database is
its own). Two installations on one host with databases of the same name must set QUETZAL_INSTALLATION_ID.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import connection


def installation_id() -> str:
    """This installation's name in its domains' metadata (letters, digits, - and _; at most 64)."""
    configured = settings.QUETZAL_INSTALLATION_ID
    if configured:
        return configured
    database = str(connection.settings_dict.get("NAME") or "")
    return "db-" + hashlib.sha256(database.encode()).hexdigest()[:16]


def is_ours(installation: str | None) -> bool:
    """Whether a domain stamped with `installation` belongs to this installation (unstamped ones are)."""
    return installation is None or installation == installation_id()
