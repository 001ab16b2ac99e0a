"""Werkzeug's reloader: ``flask run --debug`` and ``app.run(debug=True)`` on the workers app.

Both start a watcher process that imports the app (and connects) and then runs the serving child
that imports it again. Only the serving child may handle messages: the watcher's client stops
before the child starts. The app subscribes ``jobs/#`` without a shared group, so a watcher still
subscribed would handle every message a second time.
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import Callable

import pytest
from helpers import (
    APPS_DIR,
    AppProcess,
    CountedBroker,
    app_env,
    children_of,
    handled,
    handlers_by_job,
    texts,
    wait_http,
)
from support import WAIT, Peer, free_port

JOBS = 20
START = 20.0  # seconds for the watcher and its child to start, connect and subscribe


def flask_run(port: int) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "apps.workers", "run", "--debug", "--port", str(port)]


def app_run(port: int) -> list[str]:
    return [sys.executable, str(APPS_DIR / "run_debug.py")]


@pytest.mark.parametrize("command", [flask_run, app_run], ids=["flask-run-debug", "app-run-debug"])
def test_only_the_serving_child_handles_messages(
    counted: CountedBroker, peer_factory: Callable[..., Peer], command: Callable[[int], list[str]]
) -> None:
    peer = peer_factory(counted.broker)
    peer.subscribe("handled")
    peer.subscribe("workers/ready")
    port = free_port()
    env = app_env(MQTT_BROKER_URL=counted.host, MQTT_BROKER_PORT=counted.port, PORT=port)
    with AppProcess(command(port), env) as app:
        watcher = app.pid
        wait_http(app, f"http://127.0.0.1:{port}/", START)
        app.wait_until(lambda: len(children_of(watcher)) == 1, WAIT, "the reloader's serving child")
        (child,) = children_of(watcher)
        app.wait_until(lambda: str(child) in texts(peer, "workers/ready"), START, f"the child's ({child}) SUBACK")
        # The child and the peer: the watcher's client is gone.
        app.wait_until(
            lambda: counted.connections() == 2,
            WAIT,
            lambda: (
                f"2 broker connections, the child's and the peer's (now {counted.connections()}: is the"
                " watcher's client still connected?)"
            ),
        )

        tag = uuid.uuid4().hex[:8]
        jobs = [f"{tag}-{n}" for n in range(JOBS)]
        for n, job in enumerate(jobs):
            peer.publish(f"jobs/{n}", job, qos=1)
        app.wait_until(lambda: set(jobs) <= {p for _, p in handled(peer)}, WAIT, f"all {JOBS} jobs handled")
        # A second handling (by a watcher still subscribed) would come before this one.
        flush = f"{tag}-flush"
        peer.publish("jobs/flush", flush, qos=1)
        app.wait_until(lambda: flush in {p for _, p in handled(peer)}, WAIT, "the flush job handled")

        by_job = handlers_by_job(peer)
        twice = {job: pids for job, pids in by_job.items() if len(pids) != 1}
        assert not twice, f"jobs handled more than once: {twice}\n{app.describe()}"
        pids = {by_job[job][0] for job in jobs}
        assert pids == {child}, f"handled by {sorted(pids)}; watcher {watcher}, serving child {child}"
        assert "Traceback" not in app.output(), app.describe()
    # The group is gone: the child's client disconnected (or its connection was closed).
    deadline = time.monotonic() + WAIT
    while counted.connections() != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert counted.connections() == 1
