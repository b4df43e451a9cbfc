from desktops.models.console import ConsoleSession, ConsoleTicket, Recording
from desktops.models.desktop import Desktop, DesktopSnapshot
from desktops.models.metrics import DesktopRollup, DesktopSample, HostRollup, HostSample
from desktops.models.operation import Operation
from desktops.models.orphan import OrphanSighting
from desktops.models.pool import Pool
from desktops.models.template import DesktopTemplate

__all__ = [
    "ConsoleSession",
    "ConsoleTicket",
    "Desktop",
    "DesktopRollup",
    "DesktopSample",
    "DesktopSnapshot",
    "DesktopTemplate",
    "HostRollup",
    "HostSample",
    "Operation",
    "OrphanSighting",
    "Pool",
    "Recording",
]
