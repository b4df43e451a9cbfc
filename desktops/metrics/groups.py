"""Names of the live topics browsers subscribe to and of the channel-layer groups behind them."""

from __future__ import annotations

import re
from dataclasses import dataclass

OPERATORS = "operators"
TENANT = "tenant"
DESKTOP = "desktop"

_PREFIX = "qz.live"
# A topic as a browser names it: "desktop:12", "tenant" (the socket's active tenant) or "operators".
_TOPIC = re.compile(r"^(?:desktop:(?P<desktop>[1-9][0-9]{0,17})|(?P<tenant>tenant)|(?P<operators>operators))$")


@dataclass(frozen=True)
class Topic:
    """A parsed topic: exactly one of desktop id, tenant or operators."""

    kind: str
    desktop_id: int | None = None

    @property
    def name(self) -> str:
        return f"{DESKTOP}:{self.desktop_id}" if self.kind == DESKTOP else self.kind


def parse_topic(value: object) -> Topic | None:
    """The topic a browser asked for, or None when it is not one."""
    if not isinstance(value, str):
        return None
    match = _TOPIC.match(value)
    if match is None:
        return None
    if match["desktop"]:
        return Topic(kind=DESKTOP, desktop_id=int(match["desktop"]))
    return Topic(kind=TENANT if match["tenant"] else OPERATORS)


def desktop_topic(desktop_id: int) -> str:
    return f"{DESKTOP}:{desktop_id}"


def desktop_group(desktop_id: int) -> str:
    """The group of everyone watching one desktop."""
    return f"{_PREFIX}.desktop.{int(desktop_id)}"


def tenant_group(tenant_id: int) -> str:
    """The group of a tenant's admins watching the whole tenant."""
    return f"{_PREFIX}.tenant.{int(tenant_id)}"


def operators_group() -> str:
    """The group of operators watching hosts."""
    return f"{_PREFIX}.operators"
