"""Real gunicorn, 3 sync workers, with and without ``--preload``, against the embedded broker.

The workers share ``jobs/#`` (``MQTT_SHARED_GROUP``): every message is handled exactly once, by a
worker (never by the master), and the load is spread. Each worker publishes from its requests.
SIGTERM ends gunicorn with exit code 0 and every worker disconnects from the broker. The EMQX
tutorial app runs under gunicorn too: each worker prints each message once, the master none.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest
from helpers import (
    TESTS_DIR,
    AppProcess,
    CountedBroker,
    app_env,
    children_of,
    handled,
    handlers_by_job,
    post_json,
    texts,
    wait_http,
)
from support import WAIT, Peer, free_port

pytest.importorskip("gunicorn")

WORKERS = 3
JOBS = 60
#: Seconds gunicorn may take to stop after SIGTERM (workers get --graceful-timeout 10).
STOP_TIMEOUT = 15.0
#: Seconds for gunicorn to boot and every worker to connect and subscribe.
START = 20.0

PRELOAD = pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload"])


def start_gunicorn(app_spec: str, port: int, workers: int, preload: bool, env: dict[str, str]) -> AppProcess:
    args = [
        sys.executable, "-m", "gunicorn",
        "-w", str(workers),
        "-b", f"127.0.0.1:{port}",
        "--chdir", str(TESTS_DIR),
        "--graceful-timeout", "10",
    ]  # fmt: skip
    if _has_control_socket():
        args.append("--no-control-socket")  # its default path is shared by all runs
    if preload:
        args.append("--preload")
    args.append(app_spec)
    return AppProcess(args, env)


def _has_control_socket() -> bool:
    import gunicorn.config

    return hasattr(gunicorn.config, "ControlSocketDisable")


def wait_workers(app: AppProcess, n: int) -> set[int]:
    app.wait_until(lambda: len(children_of(app.pid)) == n, START, f"gunicorn to fork {n} workers")
    return children_of(app.pid)


def stop_gunicorn(app: AppProcess, counted: CountedBroker, others: int) -> None:
    """SIGTERM: gunicorn exits 0 in time, no worker failed, every worker's client disconnected."""
    rc = app.terminate(STOP_TIMEOUT)
    assert rc == 0, f"gunicorn exit code {rc} (None: still running after {STOP_TIMEOUT}s)\n{app.describe()}"
    out = app.output()
    assert "exited with code" not in out, app.describe()
    assert "Traceback" not in out, app.describe()
    deadline = time.monotonic() + WAIT
    while counted.connections() != others and time.monotonic() < deadline:
        time.sleep(0.01)
    assert counted.connections() == others, f"{counted.connections()} connections left\n{app.describe()}"


@PRELOAD
def test_gunicorn_workers_handle_each_message_once(
    counted: CountedBroker, peer_factory: Callable[..., Peer], preload: bool
) -> None:
    peer = peer_factory(counted.broker)
    for topic in ("handled", "workers/ready", "web/out"):
        peer.subscribe(topic)
    port = free_port()
    env = app_env(
        MQTT_BROKER_URL=counted.host, MQTT_BROKER_PORT=counted.port, MQTT_SHARED_GROUP=f"g{uuid.uuid4().hex[:8]}"
    )
    base = f"http://127.0.0.1:{port}"
    with start_gunicorn("apps.workers:app", port, WORKERS, preload, env) as app:
        master = app.pid
        wait_http(app, base + "/")
        workers = wait_workers(app, WORKERS)
        assert master not in workers
        app.wait_until(
            lambda: workers <= {int(p) for p in texts(peer, "workers/ready")},
            START,
            lambda: f"a SUBACK in each worker {sorted(workers)} (workers/ready: {texts(peer, 'workers/ready')})",
        )
        # The workers and the peer; with --preload the master's client is gone (its TCP connection
        # may stay open until the broker's keepalive timeout: the first worker inherits its socket).
        app.wait_until(
            lambda: counted.connections() == WORKERS + 1,
            START,
            lambda: f"{WORKERS + 1} broker connections (now {counted.connections()})",
        )

        tag = uuid.uuid4().hex[:8]
        jobs = [f"{tag}-{n}" for n in range(JOBS)]
        for n, job in enumerate(jobs):
            peer.publish(f"jobs/{n}", job, qos=1)
        app.wait_until(
            lambda: set(jobs) <= {p for _, p in handled(peer)},
            WAIT,
            lambda: f"all {JOBS} jobs handled (so far {len(handled(peer))})",
        )
        # A second handling of a job would come before these (same subscribers, same session).
        flush = [f"{tag}-flush-{k}" for k in range(2 * WORKERS)]
        for job in flush:
            peer.publish("jobs/flush", job, qos=1)
        app.wait_until(lambda: set(flush) <= {p for _, p in handled(peer)}, WAIT, "the flush jobs handled")

        by_job = handlers_by_job(peer)
        twice = {job: pids for job, pids in by_job.items() if len(pids) != 1}
        assert not twice, f"jobs handled more than once: {twice}"
        pids = {by_job[job][0] for job in jobs}
        assert master not in pids, f"the gunicorn master ({master}) handled messages"
        assert pids <= workers, f"handled by {sorted(pids)}, not all gunicorn workers {sorted(workers)}"
        assert len(pids) > 1, f"all {JOBS} jobs went to one worker ({pids})"

        # POST /publish: every worker's client publishes (QoS 1) and the peer gets each message.
        answered: dict[int, list[str]] = defaultdict(list)
        sent: list[str] = []

        def post(k: int) -> tuple[str, dict[str, Any]]:
            msg = f"{tag}-web-{k}"
            return msg, post_json(base + "/publish", {"topic": "web/out", "msg": msg})

        deadline = time.monotonic() + WAIT
        k = 0
        with ThreadPoolExecutor(2 * WORKERS) as pool:  # concurrent requests reach different workers
            while not workers <= set(answered) and time.monotonic() < deadline:
                for msg, body in pool.map(post, range(k, k + 2 * WORKERS)):
                    assert body["code"] == 0, body
                    answered[int(body["pid"])].append(msg)
                    sent.append(msg)
                k += 2 * WORKERS
        assert set(answered) == workers, f"answered by {sorted(answered)}; workers {sorted(workers)}"
        app.wait_until(
            lambda: set(sent) <= set(texts(peer, "web/out")),
            WAIT,
            f"the {len(sent)} POST /publish messages at the peer",
        )
        assert sorted(texts(peer, "web/out")) == sorted(sent), "a POST /publish message arrived twice"

        stop_gunicorn(app, counted, others=1)


TUTORIAL_LINE = "Received message on topic: /flask/mqtt with payload: {}"  # the app's print


@PRELOAD
def test_tutorial_app_under_gunicorn(counted: CountedBroker, peer_factory: Callable[..., Peer], preload: bool) -> None:
    """The EMQX tutorial, unchanged: its POST /publish and its printing on_message, 2 workers."""
    workers_n = 2
    peer = peer_factory(counted.broker)
    peer.subscribe("tutorial/out")
    port = free_port()
    env = app_env(MQTT_BROKER_URL=counted.host, MQTT_BROKER_PORT=counted.port)
    base = f"http://127.0.0.1:{port}"
    with start_gunicorn("apps.tutorial:app", port, workers_n, preload, env) as app:
        wait_http(app, base + "/")
        wait_workers(app, workers_n)
        # Each worker connected (with --preload the master did too, before it forked).
        app.wait_occurrences("Connected successfully", workers_n + int(preload), START)

        msg = f"hello-{uuid.uuid4().hex[:8]}"
        assert post_json(base + "/publish", {"topic": "tutorial/out", "msg": msg}) == {"code": 0}
        app.wait_until(lambda: msg in texts(peer, "tutorial/out"), WAIT, "the tutorial's publish at the peer")

        tag = uuid.uuid4().hex[:8]
        # Both workers subscribe in on_connect; probe until one message is printed by both.
        probes: list[str] = []
        deadline = time.monotonic() + START
        while time.monotonic() < deadline:
            probe = f"{tag}-probe-{len(probes):04d}"  # fixed width: none a prefix of another
            probes.append(probe)
            peer.publish("/flask/mqtt", probe, qos=1)
            end = time.monotonic() + 0.5
            while time.monotonic() < end and not any(
                app.occurrences(TUTORIAL_LINE.format(p)) >= workers_n for p in probes
            ):
                time.sleep(0.01)
            if any(app.occurrences(TUTORIAL_LINE.format(p)) >= workers_n for p in probes):
                break
        else:
            raise AssertionError(f"no probe was printed by {workers_n} workers\n{app.describe()}")

        final, flush = f"{tag}-final", f"{tag}-flush"
        peer.publish("/flask/mqtt", final, qos=1)
        peer.publish("/flask/mqtt", flush, qos=1)
        app.wait_until(lambda: app.occurrences(TUTORIAL_LINE.format(flush)) >= workers_n, WAIT, "the flush printed")
        assert app.occurrences(TUTORIAL_LINE.format(final)) == workers_n, (
            f"each of the {workers_n} workers (and nobody else) prints a message once\n{app.describe()}"
        )
        stop_gunicorn(app, counted, others=1)
