from hosts.models.allocation import Allocation
from hosts.models.device import HostDevice
from hosts.models.host import OPERATOR_FIELDS, Host
from hosts.models.image import Image, ImageCopy
from hosts.models.network import NetworkLease, TenantNetwork

__all__ = ["OPERATOR_FIELDS", "Allocation", "Host", "HostDevice", "Image", "ImageCopy", "NetworkLease", "TenantNetwork"]
