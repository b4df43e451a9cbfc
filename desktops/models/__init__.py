from desktops.models.desktop import Desktop, DesktopSnapshot
from desktops.models.firewall import FirewallRule
from desktops.models.home import HomeDisk, HomeUpload
from desktops.models.keys import DataKey
from desktops.models.operation import Operation
from desktops.models.orphan import OrphanSighting
from desktops.models.pool import Pool
from desktops.models.scaling import ScalingException, ScalingPlan
from desktops.models.template import DesktopTemplate, TemplateSize

__all__ = [
    "DataKey",
    "Desktop",
    "DesktopSnapshot",
    "DesktopTemplate",
    "FirewallRule",
    "HomeDisk",
    "HomeUpload",
    "Operation",
    "OrphanSighting",
    "Pool",
    "ScalingException",
    "ScalingPlan",
    "TemplateSize",
]
