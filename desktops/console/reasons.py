"""Why a console session ended, in words for people: the stored reason is a code (`browser_closed:1005`)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

# WebSocket close codes a browser reports when the tab or the network ends the connection.
_BROWSER_CODES = {
    "1000": _("The console was closed."),
    "1001": _("The browser tab was closed or left the page."),
    "1005": _("The browser tab was closed or left the page."),
    "1006": _("The connection dropped (network or browser)."),
}

_REASONS = {
    "": _("Still open, or ended without a reason."),
    "desktop_closed": _("The desktop stopped or restarted."),
    "ended_elsewhere": _("Ended from elsewhere (another tab, or an admin)."),
    "server_stopped": _("The server restarted."),
    "proxy_lost": _("The server lost track of it (it restarted or crashed)."),
    "access_revoked": _("Access to the desktop was taken away."),
    "console_unavailable": _("The desktop's screen could not be reached on its host."),
    "desktop_not_running": _("The desktop was not running."),
    "ticket_invalid": _("The console link had expired; a reload opens a new one."),
    "ticket_missing": _("The console link had expired; a reload opens a new one."),
    "not_found": _("The desktop no longer exists."),
    "console_forbidden": _("This person may not open this desktop's console."),
    "too_many_consoles": _("Refused: the person had as many consoles open as the organisation allows."),
    "tenant_consoles_full": _("Refused: the organisation had as many consoles open as it allows."),
    "admin_console_disabled": _("The organisation does not let admins open members' consoles."),
    "not_authenticated": _("The person was not signed in."),
    "session_required": _("The person was not signed in."),
}

# `access_ended:<why>`: the person's access changed while the console was open.
_ACCESS_ENDED = {
    "signed_out": _("The person signed out."),
    "deactivated": _("The person's account was deactivated."),
    "removed": _("The person was removed from the organisation."),
    "role_changed": _("The person's role changed."),
    "role_downgraded": _("The person's role changed."),
    "suspended": _("The organisation was suspended."),
    "pending": _("The organisation is waiting for approval."),
}


def describe(reason: str | None) -> str:
    """A sentence for a stored end reason; an unknown code is shown as it is, after a general sentence."""
    reason = (reason or "").strip()
    kind, _sep, detail = reason.partition(":")
    if kind == "browser_closed":
        return str(_BROWSER_CODES.get(detail, _("The browser closed the connection.")))
    if kind == "access_ended":
        return str(_ACCESS_ENDED.get(detail, _("The person's access changed.")))
    if reason in _REASONS:
        return str(_REASONS[reason])
    return str(_("Ended (%(code)s).")) % {"code": reason}
