"""Where a client runs: one per process that serves, whatever forks and reloads around it.

- After ``os.fork()`` the child starts its own client (its own Rust runtime, a fresh ``{pid}`` in
  the client id) with the parent's callbacks and subscriptions: gunicorn ``--preload`` works.
- In gunicorn's master, which only supervises, the client stops just before it forks its first
  worker (before, so no worker inherits the open socket and keeps the connection alive).
- In Werkzeug's reloader watcher (``app.run(debug=True)``, ``flask run --debug``) the client stops
  before the watcher starts the serving child, so only that child handles messages.
- At exit, in-flight publishes get a bounded time to be acknowledged, then DISCONNECT.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from . import Mqtt

logger = logging.getLogger("flask_mqtt")

#: Seconds a shutdown at exit waits for in-flight publishes to be acknowledged.
EXIT_TIMEOUT = 5.0

_live: weakref.WeakSet[Mqtt] = weakref.WeakSet()
_installed = False
_install_lock = threading.Lock()


def register(mqtt: Mqtt) -> None:
    """Tracks ``mqtt`` for the fork, reloader and exit hooks (installed once per interpreter)."""
    global _installed
    _live.add(mqtt)
    with _install_lock:
        if _installed:
            return
        _installed = True
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
    atexit.register(_at_exit)
    _patch_reloader()


def _each(action: Callable[[Mqtt], Any], why: str) -> None:
    for mqtt in list(_live):
        try:
            action(mqtt)
        except Exception:  # one broken instance must not stop the others
            logger.exception("flask_mqtt: %s failed for %r", why, mqtt)


def _after_fork_in_child() -> None:
    _each(lambda m: m._restart_after_fork(), "restart after fork")


def _in_gunicorn_spawn() -> bool:
    """True when this fork is gunicorn's arbiter spawning a worker."""
    frame: Any = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "spawn_worker" and "gunicorn" in code.co_filename:
            return True
        frame = frame.f_back
    return False


def _before_fork() -> None:
    if _in_gunicorn_spawn():
        _each(lambda m: m._stop_in_supervisor("gunicorn master"), "stop in the gunicorn master")


def _at_exit() -> None:
    _each(lambda m: m._disconnect(timeout=EXIT_TIMEOUT), "shutdown at exit")


def _patch_reloader() -> None:
    """Stops every client in Werkzeug's reloader watcher before it starts the serving child."""
    try:
        from werkzeug import _reloader
    except ImportError:  # pragma: no cover - Flask always brings Werkzeug
        return
    original = _reloader.ReloaderLoop.restart_with_reloader
    if getattr(original, "_flask_mqtt", False):
        return

    def restart_with_reloader(self: Any) -> int:
        # Only the watcher calls this; the serving child imports the app again and connects.
        _each(lambda m: m._stop_in_supervisor("reloader watcher"), "stop in the reloader watcher")
        return original(self)

    restart_with_reloader._flask_mqtt = True  # type: ignore[attr-defined]
    _reloader.ReloaderLoop.restart_with_reloader = restart_with_reloader  # type: ignore[method-assign]
