"""One reopening libvirt connection per URI, with keepalive and error translation."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from typing import TypeVar

import libvirt

from hosts.hypervisor.errors import HostUnavailable, from_libvirt_error, is_connection_error

__all__ = ["LibvirtConnection", "ensure_event_loop"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def _ignore_libvirt_error(_ctx: object, _err: object) -> None:
    """Swallow libvirt's default error printing; errors still raise libvirtError."""


# Without this libvirt prints every error (even expected "not found") to stderr.
libvirt.registerErrorHandler(_ignore_libvirt_error, None)

_event_loop_lock = threading.Lock()
_event_loop_registered = False
_event_loop_pid: int | None = None


def _run_event_loop() -> None:
    """Drive libvirt's default event loop forever (keepalive pings and close callbacks)."""
    while True:
        libvirt.virEventRunDefaultImpl()


def ensure_event_loop() -> None:
    """Register libvirt's default event loop once and run it on a daemon thread per process."""
    global _event_loop_registered, _event_loop_pid
    with _event_loop_lock:
        if not _event_loop_registered:
            # Must happen before the first connection is opened for keepalive to work.
            libvirt.virEventRegisterDefaultImpl()
            _event_loop_registered = True
        if _event_loop_pid != os.getpid():
            # Threads do not survive fork (Celery prefork), so each child starts its own.
            threading.Thread(target=_run_event_loop, name="libvirt-events", daemon=True).start()
            _event_loop_pid = os.getpid()


class LibvirtConnection:
    """A lazily opened libvirt connection that reopens when it has died."""

    def __init__(
        self,
        uri: str,
        *,
        keepalive_interval_s: int = 5,
        keepalive_count: int = 3,
        open_timeout_s: float = 10.0,
    ) -> None:
        self.uri = uri
        self.keepalive_interval_s = keepalive_interval_s
        self.keepalive_count = keepalive_count
        self.open_timeout_s = open_timeout_s
        self._conn: libvirt.virConnect | None = None
        self._lock = threading.Lock()
        self.opened_count = 0

    def _open(self) -> libvirt.virConnect:
        """Open a new connection or raise HostUnavailable, waiting at most open_timeout_s."""
        ensure_event_loop()
        result: dict[str, object] = {}
        abandoned = threading.Event()

        def opener() -> None:
            try:
                conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                result["error"] = exc
                return
            if abandoned.is_set():
                # The caller gave up (e.g. a SYN to an unroutable host finally answered).
                conn.close()
                return
            result["conn"] = conn

        # libvirt has no connect timeout; a thread bounds a TCP connect to a dead address.
        thread = threading.Thread(target=opener, name="libvirt-open", daemon=True)
        thread.start()
        thread.join(self.open_timeout_s)
        if thread.is_alive():
            abandoned.set()
            raise HostUnavailable(f"timed out opening {self.uri} after {self.open_timeout_s}s")
        if "error" in result:
            exc = result["error"]
            assert isinstance(exc, libvirt.libvirtError)
            # Whatever the cause (refused, auth, bad URI), the host cannot be used now.
            raise HostUnavailable(
                f"cannot connect to {self.uri}: {exc.get_error_message() or exc}",
                libvirt_code=exc.get_error_code(),
            ) from exc
        conn = result["conn"]
        assert isinstance(conn, libvirt.virConnect)
        try:
            conn.setKeepAlive(self.keepalive_interval_s, self.keepalive_count)
        except libvirt.libvirtError as exc:
            # Local drivers (test://, some embedded ones) do not implement keepalive.
            log.debug("keepalive not enabled for %s: %s", self.uri, exc)
        self.opened_count += 1
        return conn

    @staticmethod
    def _alive(conn: libvirt.virConnect) -> bool:
        """Whether conn still works; a closed connection raises instead of answering."""
        try:
            return bool(conn.isAlive())
        except libvirt.libvirtError:
            return False

    def get(self) -> libvirt.virConnect:
        """The live connection, (re)opening it if needed."""
        with self._lock:
            if self._conn is None or not self._alive(self._conn):
                self._discard_locked()
                self._conn = self._open()
            return self._conn

    def _discard_locked(self) -> None:
        """Forget the current connection, closing it quietly."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    def discard(self, conn: libvirt.virConnect | None = None) -> None:
        """Drop the connection (only if it is still conn, when given) so the next get reopens."""
        with self._lock:
            if conn is None or self._conn is conn:
                self._discard_locked()

    def close(self) -> None:
        """Close the connection; a later call reopens it."""
        self.discard()

    def abandon(self) -> libvirt.virConnect | None:
        """Forget the connection without closing it (after fork it belongs to the parent)."""
        # The lock may have been held by a parent thread at fork time: replace, never take it.
        self._lock = threading.Lock()
        conn, self._conn = self._conn, None
        return conn

    def run(self, fn: Callable[[libvirt.virConnect], T], *, retry: bool = True) -> T:
        """Call fn(conn), translating errors; on a dropped connection reopen and retry once."""
        conn = self.get()
        try:
            return fn(conn)
        except libvirt.libvirtError as exc:
            if not is_connection_error(exc):
                raise from_libvirt_error(exc) from exc
            self.discard(conn)
            if not retry:
                # The call may or may not have happened; the caller's idempotent retry decides.
                raise from_libvirt_error(exc) from exc
            log.warning("libvirt connection to %s lost (%s); reopening", self.uri, exc)
        conn = self.get()  # raises HostUnavailable when the host is still unreachable
        try:
            return fn(conn)
        except libvirt.libvirtError as exc:
            if is_connection_error(exc):
                self.discard(conn)
            raise from_libvirt_error(exc) from exc
