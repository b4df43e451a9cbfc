from desktops.models.desktop import Desktop, DesktopSnapshot
from desktops.models.home import HomeDisk, HomeUpload
from desktops.models.operation import Operation
from desktops.models.orphan import OrphanSighting
from desktops.models.pool import Pool
from desktops.models.template import DesktopTemplate, TemplateSize

__all__ = [
    "Desktop",
    "DesktopSnapshot",
    "DesktopTemplate",
    "HomeDisk",
    "HomeUpload",
    "Operation",
    "OrphanSighting",
    "Pool",
    "TemplateSize",
]
