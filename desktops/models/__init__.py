from desktops.models.automation import AutomationTarget
from desktops.models.desktop import Desktop, DesktopLabel, DesktopSnapshot
from desktops.models.firewall import FirewallRule
from desktops.models.home import HomeDisk, HomeUpload
from desktops.models.keys import DataKey
from desktops.models.onboarding import NewMemberDesktop
from desktops.models.operation import Operation
from desktops.models.orphan import OrphanSighting
from desktops.models.pool import Pool
from desktops.models.readiness import LaunchTiming
from desktops.models.scaling import ScalingException, ScalingPlan, StopNotice
from desktops.models.template import DesktopTemplate, TemplateSize

__all__ = [
    "AutomationTarget",
    "DataKey",
    "Desktop",
    "DesktopLabel",
    "DesktopSnapshot",
    "DesktopTemplate",
    "FirewallRule",
    "HomeDisk",
    "HomeUpload",
    "LaunchTiming",
    "NewMemberDesktop",
    "Operation",
    "OrphanSighting",
    "Pool",
    "ScalingException",
    "ScalingPlan",
    "StopNotice",
    "TemplateSize",
]
