"""Shared helpers of the real-process tests (gunicorn, the reloader, Socket.IO).

- :class:`AppProcess` starts a subprocess in its own process group, collects its output
  (stdout and stderr) on a thread, waits on that output or on HTTP readiness, and always
  cleans up (the whole group) when used as a context manager.
- :func:`app_env` gives a subprocess the ``flask_mqtt`` this pytest process imported, wherever it
  is installed (the source tree or site-packages), ahead of any other ``flask_mqtt``.
- :class:`CountedBroker` is the embedded broker (as conftest's ``embedded`` fixture makes it) that
  also tells how many clients are connected.

The apps run with ``tests/`` as their working directory and are imported as ``apps.<name>``:
``tests/`` holds no ``flask_mqtt``, so it cannot shadow the installed package.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable

from support import WAIT, Broker, Peer

import flask_mqtt
from flask_mqtt.testing import EmbeddedBroker

if TYPE_CHECKING:
    from typing_extensions import Self

TESTS_DIR = Path(__file__).resolve().parent
APPS_DIR = TESTS_DIR / "apps"

#: Seconds a started server may take to answer HTTP.
START_TIMEOUT = 20.0

# Variables that would change how a Flask/Werkzeug child behaves if inherited.
_SCRUB = ("WERKZEUG_RUN_MAIN", "WERKZEUG_SERVER_FD", "FLASK_APP", "FLASK_DEBUG", "FLASK_RUN_PORT")


def package_root() -> str:
    """The directory the imported ``flask_mqtt`` package lives in."""
    return str(Path(flask_mqtt.__file__).resolve().parent.parent)


def app_env(**extra: object) -> dict[str, str]:
    """The environment of an app subprocess: unbuffered output, this process's ``flask_mqtt``."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    paths = [package_root()]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


class AppProcess:
    """A subprocess (its own session and process group) whose output a thread collects."""

    def __init__(self, args: Sequence[str], env: dict[str, str], cwd: Path = TESTS_DIR) -> None:
        self.args = list(args)
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self.proc = subprocess.Popen(
            self.args,
            cwd=str(cwd),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name=f"output-{self.proc.pid}", daemon=True)
        self._reader.start()

    # ------------------------------------------------------------------ output

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def lines(self) -> list[str]:
        with self._cond:
            return list(self._lines)

    def output(self) -> str:
        return "\n".join(self.lines())

    def describe(self) -> str:
        rc = self.proc.poll()
        state = "running" if rc is None else f"exited with {rc}"
        return f"$ {' '.join(self.args)}  [pid {self.pid}, {state}]\n--- output ---\n{self.output()}\n--- end ---"

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"the process exited early\n{self.describe()}")

    def wait_output(self, predicate: Callable[[list[str]], bool], timeout: float = WAIT, what: str = "output") -> None:
        """Waits until ``predicate(lines)`` holds (woken by each new line); fails with the output."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self._lines):
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:  # no more output will come
                    break
                self._cond.wait(min(left, 0.25))
            else:
                return
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{self.describe()}")

    def wait_until(
        self, predicate: Callable[[], bool], timeout: float = WAIT, what: str | Callable[[], str] = "condition"
    ) -> None:
        """Waits for a condition outside the process (e.g. what a peer received); the process must
        stay up. Fails with ``what`` (a callable is asked at the time) and the process's output."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                text = what() if callable(what) else what
                raise AssertionError(f"timed out after {timeout}s waiting for {text}\n{self.describe()}")
            self.check_alive()
            time.sleep(0.01)  # bounded poll of a condition that callbacks make true

    def occurrences(self, text: str) -> int:
        """How often ``text`` occurs in the output. Lines that several processes print at once
        may be interleaved (``print`` writes the text and the newline separately)."""
        return self.output().count(text)

    def wait_occurrences(self, text: str, n: int, timeout: float = WAIT) -> None:
        """Waits until ``text`` occurs at least ``n`` times in the output."""
        self.wait_output(lambda lines: "\n".join(lines).count(text) >= n, timeout, f"{n} times {text!r}")

    # ------------------------------------------------------------------ ending

    def terminate(self, timeout: float = WAIT) -> int | None:
        """SIGTERM to the process itself; its exit code, or None if it outlived ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill_group(self, grace: float = 5.0) -> None:
        """SIGTERM to the whole process group, SIGKILL to what is left after ``grace`` seconds."""
        pgid = self.proc.pid
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.02)  # bounded: the group's other members get the same grace
        if self.proc.poll() is None or _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
            self.proc.wait(WAIT)
        self._reader.join(WAIT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill_group()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process is in group ``pgid``."""
    for pid in _all_pids():
        _, group, state = _stat(pid)
        if group == pgid and state not in ("Z", "X", ""):
            return True
    return False


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _stat(pid: int) -> tuple[int, int, str]:
    """(ppid, pgid, state) of ``pid`` from /proc; (-1, -1, '') if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return -1, -1, ""
    # The command name (2nd field) is in parentheses and may contain spaces.
    fields = data[data.rfind(")") + 2 :].split()
    return int(fields[1]), int(fields[2]), fields[0]


def children_of(pid: int) -> set[int]:
    """Live (non-zombie) child processes of ``pid``."""
    out = set()
    for p in _all_pids():
        ppid, _, state = _stat(p)
        if ppid == pid and state not in ("Z", ""):
            out.add(p)
    return out


# ---------------------------------------------------------------------- HTTP


def http_request(url: str, body: dict[str, Any] | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET (or POST ``body`` as JSON); (status, body) for any HTTP answer, errors included."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    req.add_header("Connection", "close")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def post_json(url: str, body: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    status, raw = http_request(url, body, timeout)
    assert status == 200, f"POST {url} -> {status}: {raw[:500]!r}"
    result = json.loads(raw)
    assert isinstance(result, dict), result
    return result


def wait_http(app: AppProcess, url: str, timeout: float = START_TIMEOUT) -> int:
    """Waits until ``url`` gives any HTTP answer (the process must stay up); returns the status."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        app.check_alive()
        try:
            return http_request(url, timeout=max(0.5, min(5.0, deadline - time.monotonic())))[0]
        except (OSError, urllib.error.URLError) as exc:  # not listening (or not serving) yet
            last = exc
        time.sleep(0.05)  # bounded poll of a condition (the port answering)
    raise AssertionError(f"{url} did not answer within {timeout}s (last error: {last!r})\n{app.describe()}")


# ---------------------------------------------------------------------- broker


@dataclass
class CountedBroker:
    """The embedded broker (conftest's ``embedded`` one) that also counts its connections."""

    embedded: EmbeddedBroker
    broker: Broker  # conftest's Broker record, for ``peer_factory``

    @property
    def host(self) -> str:
        return self.broker.host

    @property
    def port(self) -> int:
        return self.broker.port

    def connections(self) -> int:
        return self.embedded.connections

    def stop(self) -> None:
        self.embedded.stop()


def start_counted_broker() -> CountedBroker:
    embedded = EmbeddedBroker()
    return CountedBroker(embedded, Broker("embedded", embedded.host, embedded.port, stop=embedded.stop))


def texts(peer: Peer, topic: str) -> list[str]:
    return [p.decode() for p in peer.payloads(topic)]


def handled(peer: Peer) -> list[tuple[int, str]]:
    """``(pid, payload)`` of each ``handled`` message the workers sent."""
    out = []
    for text in texts(peer, "handled"):
        pid, _, payload = text.partition(":")
        out.append((int(pid), payload))
    return out


def handlers_by_job(peer: Peer) -> dict[str, list[int]]:
    """The pids that handled each job, in the order their ``handled`` messages came."""
    by_job: dict[str, list[int]] = defaultdict(list)
    for pid, payload in handled(peer):
        by_job[payload].append(pid)
    return by_job
