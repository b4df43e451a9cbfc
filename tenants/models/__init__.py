from tenants.models.audit import AuditEvent
from tenants.models.tenant import Invitation, Membership, Tenant
from tenants.models.token import ApiToken
from tenants.models.user import User

__all__ = ["ApiToken", "AuditEvent", "Invitation", "Membership", "Tenant", "User"]
