"""Fair share of consoles: how many one person, and one organisation, may have open at once (tenant policies).

A console holds a proxy's socket, a VNC connection and the host's encoder for as long as it is open; without a
bound one person's forgotten tabs, or one tenant's wall of screens, take what the others need. Sessions whose
proxy went silent (sessions.stale_cutoff) are not counted: a killed web process must not lock people out.
"""

from __future__ import annotations

from datetime import datetime

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from desktops.console.errors import TooManyConsoles
from desktops.console.models import ConsoleSession


def open_sessions(tenant, now: datetime):
    from desktops.console.sessions import stale_cutoff

    return ConsoleSession.objects.filter(tenant=tenant, ended_at__isnull=True, last_seen_at__gte=stale_cutoff(now))


def ensure_room(*, tenant, user, now: datetime) -> None:
    """Refuse one more console beyond the tenant's limits (429, close code 4429); 0 means no limit.

    Advisory when a ticket is issued; binding when the socket opens, where the caller holds the tenant's lock.
    """
    per_person, per_tenant = tenant.max_consoles_per_person, tenant.max_consoles_per_tenant
    if not per_person and not per_tenant:
        return
    live = open_sessions(tenant, now)
    if per_person and live.filter(user=user).count() >= per_person:
        raise TooManyConsoles(
            ngettext(
                "You already have %(count)d console open, as many as %(tenant)s allows at once; "
                "close it in its other tab or device, then reconnect.",
                "You already have %(count)d consoles open, as many as %(tenant)s allows at once; "
                "close one in another tab or device, then reconnect.",
                per_person,
            )
            % {"count": per_person, "tenant": tenant.name}
        )
    if per_tenant and live.count() >= per_tenant:
        raise TooManyConsoles(
            _("All %(count)d consoles %(tenant)s allows at once are in use; try again in a few minutes.")
            % {"count": per_tenant, "tenant": tenant.name},
            code="tenant_consoles_full",
        )
