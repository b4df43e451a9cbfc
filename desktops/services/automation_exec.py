"""Running a command in a running desktop through its guest agent (guest-exec), for automation.

Only where the desktop's template allows it (`automation_exec_enabled`), for a session or a token with exec
access, under the tenant's automation policy. Like a screenshot, the request waits for the answer (bounded by
timeout_s): the command's exit code and output are the point. Every run is audited with its program and its
number of arguments, never its input or its output.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext

from desktops.models import Desktop
from desktops.services.automation import drivable_desktop, host_uri_of, hypervisor_call
from desktops.services.automation_tokens import require_exec_scope
from hosts.hypervisor import AgentCommandFailed, AgentUnavailable, HypervisorError, get_hypervisor
from quetzal.errors import FieldErrors, Forbidden, ServiceError
from tenants import events
from tenants.models import ApiToken, User

# Bounds of one command. guest-exec's arguments and input travel in one agent message, and messages much over
# ~48 KiB break the agent's channel (FINDINGS): argv and stdin together stay under that.
MAX_ARGS = 64
MAX_ARG_CHARS = 4096
MAX_ARGV_CHARS = 16 * 1024
MAX_STDIN_BYTES = 32 * 1024
TIMEOUT_BOUNDS = (1, 120)
DEFAULT_TIMEOUT_S = 30
# Output kept per stream; the rest is dropped and the answer says so.
MAX_OUTPUT_BYTES = 1024 * 1024
# The audit log keeps the program's name, cut to this length.
MAX_PROGRAM_CHARS = 200
# How long each agent call may take, how often the command is looked at, and how long a killed one may take to go.
AGENT_TIMEOUT_S = 10
POLL_FIRST_S = 0.02
POLL_MAX_S = 0.25
KILL_GRACE_S = 3.0

# A command past its time is killed with all it started: qemu-ga reports it finished only once every process
# holding its output pipes is gone, and it has no kill of its own. Each level of children is stopped before the
# next is looked for, so none forks away meanwhile. POSIX sh and /proc only (busybox, dash, bash).
KILL_TREE = r"""
kids() {
  for s in /proc/[0-9]*/stat; do
    { read -r l < "$s"; } 2>/dev/null || continue
    set -- ${l##*") "}
    [ "$2" = "$p" ] && { s=${s#/proc/}; echo "${s%/stat}"; }
  done
}
kill -STOP "$1" 2>/dev/null
all=$1 level=$1 depth=0
while [ -n "$level" ] && [ "$depth" -lt 32 ]; do
  next=
  for p in $level; do
    for c in $(kids); do kill -STOP "$c" 2>/dev/null; next="$next $c"; done
  done
  all="$all $next" level=$next depth=$((depth + 1))
done
kill -KILL $all 2>/dev/null
exit 0
"""


@dataclass(frozen=True)
class ExecResult:
    """What a command did: its exit code (None when killed), its output, and whether it ran out of time."""

    exit_code: int | None
    signal: int | None
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool
    elapsed_ms: int

    def as_dict(self, *, encoding: str = "utf-8") -> dict[str, Any]:
        """The answer as JSON: output as text (undecodable bytes replaced) or, asked for, as base64."""

        def text(data: bytes) -> str:
            if encoding == "base64":
                return base64.b64encode(data).decode()
            return data.decode("utf-8", errors="replace")

        return {
            "exit_code": self.exit_code,
            "signal": self.signal,
            "stdout": text(self.stdout),
            "stderr": text(self.stderr),
            "stdout_truncated": self.stdout_truncated,
            "stderr_truncated": self.stderr_truncated,
            "timed_out": self.timed_out,
            "elapsed_ms": self.elapsed_ms,
            "encoding": encoding,
        }


def validate(*, argv: object, stdin: object = b"", timeout_s: object = DEFAULT_TIMEOUT_S) -> None:
    """Refuse a command outside the bounds before anything reaches the guest (400, errors by field)."""
    errors: dict[str, str] = {}
    if not isinstance(argv, list | tuple) or not all(isinstance(arg, str) for arg in argv):
        errors["argv"] = gettext("A list of strings: the program, then its arguments.")
    elif not 1 <= len(argv) <= MAX_ARGS:
        errors["argv"] = gettext("Give the program and at most %(value)s arguments.") % {"value": MAX_ARGS - 1}
    elif not argv[0].strip():
        errors["argv"] = gettext("The program (the first item) is empty.")
    elif any(len(arg) > MAX_ARG_CHARS for arg in argv):
        errors["argv"] = gettext("Each argument is at most %(MAX_ARG_CHARS)s characters.") % {
            "MAX_ARG_CHARS": MAX_ARG_CHARS
        }
    elif sum(len(arg) for arg in argv) > MAX_ARGV_CHARS:
        errors["argv"] = gettext("All arguments together are at most %(MAX_ARGV_CHARS)s characters.") % {
            "MAX_ARGV_CHARS": MAX_ARGV_CHARS
        }
    elif any("\x00" in arg for arg in argv):
        errors["argv"] = gettext("An argument cannot hold a NUL character.")
    if not isinstance(stdin, bytes):
        errors["stdin"] = gettext("Input is bytes.")
    elif len(stdin) > MAX_STDIN_BYTES:
        errors["stdin"] = gettext("Input is at most %(MAX_STDIN_BYTES)s bytes.") % {"MAX_STDIN_BYTES": MAX_STDIN_BYTES}
    low, high = TIMEOUT_BOUNDS
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int) or not low <= timeout_s <= high:
        errors["timeout_s"] = gettext("A whole number of seconds from %(low)s to %(high)s.") % {
            "low": low,
            "high": high,
        }
    if errors:
        raise FieldErrors(errors, code="invalid_exec")


def decode_stdin_b64(value: str) -> bytes:
    """Input given as base64 (for bytes that are not text)."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise FieldErrors({"stdin_b64": gettext("Not valid base64.")}, code="invalid_exec") from None


def _allow_exec(token: ApiToken | None) -> Callable[[Desktop], None]:
    def refuse(desktop: Desktop) -> None:
        require_exec_scope(token)
        if not desktop.template.automation_exec_enabled:
            raise Forbidden(
                gettext("The template %(name)s does not let scripts run commands in its desktops.")
                % {"name": desktop.template.name},
                code="exec_not_enabled",
            )

    return refuse


def _agent_error(error: HypervisorError) -> ServiceError:
    return ServiceError(
        gettext("The desktop's guest agent does not answer (is qemu-guest-agent running in it?): %(message)s")
        % {"message": error.message},
        code="guest_agent_unavailable",
        status=503,
    )


def _agent_said(error: AgentCommandFailed) -> str:
    """The agent's own words from libvirt's "unable to execute QEMU agent command 'x': words"."""
    return error.message.partition("': ")[2] or error.message


class _AgentSaid(Exception):
    """Carries the guest agent's own failure through the host's error wording."""

    def __init__(self, error: HypervisorError) -> None:
        super().__init__(error.message)
        self.error = error


class _Agent:
    """One desktop's guest agent: each command's answer, its failures as stable refusals."""

    def __init__(self, desktop: Desktop) -> None:
        self._hv = get_hypervisor(host_uri_of(desktop))
        self._domain = desktop.domain_name

    def __call__(self, execute: str, **arguments: Any) -> Any:
        """The command's "return"; AgentCommandFailed when the agent refused it, which each caller words."""
        command = {"execute": execute, "arguments": arguments}

        def call() -> Any:
            try:
                return self._hv.agent_command(self._domain, command, AGENT_TIMEOUT_S)
            except AgentUnavailable as error:  # AgentCommandFailed too
                raise _AgentSaid(error) from None  # past hypervisor_call, which words the host's failures

        try:
            return hypervisor_call(call)
        except _AgentSaid as said:
            if not isinstance(said.error, AgentCommandFailed):
                # A desynchronised channel answers garbage until a guest-sync: leave it usable for the next call.
                self.sync()
                raise _agent_error(said.error) from None
            raise said.error from None

    def sync(self) -> None:
        with contextlib.suppress(HypervisorError, ServiceError):
            self._hv.agent_command(
                self._domain, {"execute": "guest-sync", "arguments": {"id": secrets.randbelow(2**31)}}, 5
            )


def _start(agent: _Agent, argv: Sequence[str], stdin: bytes) -> int:
    arguments: dict[str, Any] = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True}
    if stdin:
        arguments["input-data"] = base64.b64encode(stdin).decode()
    try:
        started = agent("guest-exec", **arguments)
    except AgentCommandFailed as error:
        raise ServiceError(
            gettext("The guest could not start %(value)s: %(agent_said)s")
            % {"value": argv[0][:MAX_PROGRAM_CHARS], "agent_said": _agent_said(error)},
            code="exec_not_started",
        ) from None
    pid = started.get("pid") if isinstance(started, dict) else None
    if not isinstance(pid, int):
        raise ServiceError(
            gettext("The desktop's guest agent cannot run commands."), code="guest_agent_unavailable", status=503
        )
    return pid


def _status(agent: _Agent, pid: int) -> dict[str, Any]:
    try:
        status = agent("guest-exec-status", pid=pid)
    except AgentCommandFailed as error:
        raise ServiceError(
            gettext("The guest agent lost the command: %(agent_said)s") % {"agent_said": _agent_said(error)},
            code="hypervisor_error",
            status=502,
        ) from None
    return status if isinstance(status, dict) else {}


def _wait(agent: _Agent, pid: int, deadline: float) -> dict[str, Any] | None:
    """The command's status once it exited, or None when the deadline came first."""
    delay = POLL_FIRST_S
    while True:
        status = _status(agent, pid)
        if status.get("exited"):
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, POLL_MAX_S)


def _kill(agent: _Agent, pid: int) -> None:
    """Kill the command and what it started (best effort: a guest without /bin/sh keeps it)."""
    with contextlib.suppress(ServiceError, HypervisorError):
        agent("guest-exec", path="/bin/sh", arg=["-c", KILL_TREE, "sh", str(pid)])


def _output(status: dict[str, Any], key: str) -> tuple[bytes, bool]:
    try:
        data = base64.b64decode(status.get(f"{key}-data") or "")
    except (binascii.Error, ValueError):
        data = b""
    truncated = bool(status.get(f"{key}-truncated")) or len(data) > MAX_OUTPUT_BYTES
    return data[:MAX_OUTPUT_BYTES], truncated


def run(
    *,
    desktop: Desktop,
    argv: Sequence[str],
    stdin: bytes = b"",
    timeout_s: int = DEFAULT_TIMEOUT_S,
    actor: User | None,
    token: ApiToken | None = None,
    ip: str | None = None,
) -> ExecResult:
    """Run argv (no shell) in the running desktop as its guest agent's user, wait for it, and audit it.

    A command still running after timeout_s is killed with its children: the answer then says timed_out, with
    whatever output it wrote until then.
    """
    validate(argv=argv, stdin=stdin, timeout_s=timeout_s)
    desktop = drivable_desktop(desktop, actor=actor, token=token, write=True, refuse=_allow_exec(token))
    agent = _Agent(desktop)
    started = time.monotonic()
    pid = _start(agent, argv, stdin)
    status = _wait(agent, pid, started + timeout_s)
    timed_out = status is None
    if status is None:
        _kill(agent, pid)
        status = _wait(agent, pid, time.monotonic() + KILL_GRACE_S) or {}
    stdout, stdout_truncated = _output(status, "out")
    stderr, stderr_truncated = _output(status, "err")
    exit_code = status.get("exitcode") if not timed_out else None
    signal = status.get("signal")
    result = ExecResult(
        exit_code=exit_code if isinstance(exit_code, int) else None,
        signal=signal if isinstance(signal, int) else None,
        stdout=stdout,
        stderr=stderr,
        stdout_truncated=stdout_truncated,
        stderr_truncated=stderr_truncated,
        timed_out=timed_out,
        elapsed_ms=round((time.monotonic() - started) * 1000),
    )
    now = timezone.now()
    # A command is automation like input: the idle policy waits, and the console shows that a script drives.
    Desktop.objects.filter(pk=desktop.pk).update(last_activity_at=now, automation_at=now)
    events.desktop_exec(
        actor=actor,
        desktop=desktop,
        program=argv[0][:MAX_PROGRAM_CHARS],
        args=len(argv) - 1,
        exit_code=result.exit_code,
        timed_out=timed_out,
        token=token,
        ip=ip,
    )
    return result
