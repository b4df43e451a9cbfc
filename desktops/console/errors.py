"""Console refusals: each has a stable API code and the WebSocket close code the page understands."""

from __future__ import annotations

from quetzal.errors import ServiceError


class ConsoleError(ServiceError):
    """A console request or connection was refused; `close_code` is what the WebSocket closes with."""

    code = "console_refused"
    status = 403
    close_code = 4403


class NotSignedIn(ConsoleError):
    code = "not_authenticated"
    status = 401
    close_code = 4401


class SessionRequired(ConsoleError):
    code = "session_required"
    status = 400
    close_code = 4401


class DesktopNotFound(ConsoleError):
    code = "not_found"
    status = 404
    close_code = 4404


class ConsoleForbidden(ConsoleError):
    code = "console_forbidden"
    status = 403
    close_code = 4403


class DesktopNotRunning(ConsoleError):
    code = "desktop_not_running"
    status = 409
    close_code = 4409


class TicketInvalid(ConsoleError):
    """Unknown, already used, expired or bound to someone or something else."""

    code = "ticket_invalid"
    status = 403
    close_code = 4410


class ConsoleUnavailable(ConsoleError):
    """The desktop's VNC server cannot be reached (host down, no port)."""

    code = "console_unavailable"
    status = 503
    close_code = 4503


class TooManyConsoles(ConsoleError):
    """The person, or the whole organisation, has as many consoles open as the tenant allows at once."""

    code = "too_many_consoles"
    status = 429
    close_code = 4429


class RecordingMissing(ConsoleError):
    code = "recording_missing"
    status = 404
    close_code = 4404
