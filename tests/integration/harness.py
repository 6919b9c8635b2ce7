"""Real servers for the integration tests: gunicorn, scratch databases, TCP proxies.

Every server and proxy started here is stopped by the context manager that
started it; every wait is bounded. Traffic stays on 127.0.0.1.
"""
import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# Redis databases 5-9 are ours; limits are namespaced by a per-run key prefix.
REDIS_DB = 5
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
PASSWORD = "integration-pass-1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tcp_reachable(host, port, timeout=1.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def redis_reachable():
    return tcp_reachable(REDIS_HOST, REDIS_PORT)


def postgres_server_url():
    """The PostgreSQL server of the PostgreSQL pass, as a maintenance-database URL.

    The gunicorn tests on PostgreSQL run in the pass where TEST_DATABASE_URL
    names a PostgreSQL database (CI runs the suite twice), so they run once.
    """
    if not TEST_DATABASE_URL or not TEST_DATABASE_URL.startswith(("postgres://", "postgresql")):
        return None
    parts = urlsplit(TEST_DATABASE_URL)
    return urlunsplit(("postgresql", parts.netloc, "/postgres", parts.query, ""))


needs_postgres_pass = pytest.mark.skipif(
    postgres_server_url() is None,
    reason="gunicorn-on-PostgreSQL tests run in the pass where TEST_DATABASE_URL names a "
           "PostgreSQL database (they create their own scratch database on that server)")
sqlite_pass_only = pytest.mark.skipif(
    TEST_DATABASE_URL is not None,
    reason="gunicorn-on-SQLite tests run once, in the pass without TEST_DATABASE_URL")
needs_redis = pytest.mark.skipif(
    not redis_reachable(), reason=f"no Redis reachable on {REDIS_HOST}:{REDIS_PORT}")


def _psycopg2_connect(url, **kwargs):
    import psycopg2
    return psycopg2.connect(url, connect_timeout=5, **kwargs)


@contextlib.contextmanager
def scratch_postgres():
    """A fresh database on the PostgreSQL server of TEST_DATABASE_URL, dropped afterwards."""
    admin_url = postgres_server_url()
    try:
        admin = _psycopg2_connect(admin_url)
    except Exception as exc:  # the pass promised PostgreSQL: say clearly why we cannot run
        pytest.fail(f"TEST_DATABASE_URL's server is not reachable: {exc}")
    admin.autocommit = True
    name = f"containerscan_it_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        parts = urlsplit(admin_url)
        yield urlunsplit(("postgresql", parts.netloc, "/" + name, parts.query, ""))
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextlib.contextmanager
def scratch_sqlite():
    with tempfile.TemporaryDirectory(prefix="containerscan-it-") as tmp:
        yield "sqlite:///" + os.path.join(tmp, "it.db")


def base_env(database_url, **settings):
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "FLASK_APP")}
    env.update({
        "DATABASE_URL": database_url,
        "SECRET_KEY": "integration-secret",
        "RATELIMIT_STORAGE_URI": "memory://",
        "AGENT_RATE_LIMIT": "100000 per hour",
        "USER_RATE_LIMIT": "100000 per hour",
        "AUTH_RATE_LIMIT": "100000 per hour",
        "PYTHONUNBUFFERED": "1",
    })
    env.update({k: str(v) for k, v in settings.items()})
    return env


def flask_cli(env, *args, stdin=None, timeout=60):
    """Run ``flask --app wsgi ARGS``; returns stdout stripped."""
    proc = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=REPO,
                          env=env, input=stdin, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"flask {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout.strip()


def provision(env, keys=1, org="it-org", username="it-user"):
    """Migrate, then create an organization, a user with a token, and ``keys`` agent keys."""
    from concurrent.futures import ThreadPoolExecutor

    flask_cli(env, "db", "upgrade")
    org_id = int(flask_cli(env, "orgs", "create", org))
    flask_cli(env, "users", "create", username, "--org", org, "--password-stdin",
              stdin=PASSWORD + "\n")
    with ThreadPoolExecutor(4) as pool:
        token = pool.submit(flask_cli, env, "tokens", "create", username)
        agent_keys = [pool.submit(flask_cli, env, "api-keys", "create", "--org", org,
                                  "--name", f"agent-{i}") for i in range(keys)]
        return {"org_id": org_id, "username": username, "password": PASSWORD,
                "token": token.result(timeout=120), "keys": [k.result(timeout=120) for k in agent_keys]}


class Gunicorn:
    """``python -m gunicorn wsgi:app`` on a free port; the access log names the worker pid."""

    def __init__(self, env, workers=1, threads=1, timeout=30, extra=()):
        self.env, self.port = env, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="gunicorn-", suffix=".log", delete=False)
        self.args = [sys.executable, "-m", "gunicorn", "--chdir", REPO,
                     "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
                     "--threads", str(threads), "--timeout", str(timeout),
                     "--graceful-timeout", "3", "--access-logfile", "-",
                     "--access-logformat", 'pid=%(p)s "%(r)s" %(s)s', *extra, "wsgi:app"]
        self.proc = None

    def start(self, wait=30):
        self.proc = subprocess.Popen(self.args, cwd=REPO, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gunicorn exited with {self.proc.returncode}:\n{self.text()}")
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"gunicorn did not answer within {wait}s:\n{self.text()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()

    def text(self):
        self.log.flush()
        with open(self.log.name, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def pids_served(self, marker):
        """Worker pids in access-log lines that contain ``marker``."""
        return {line.split()[0][4:] for line in self.text().splitlines()
                if line.startswith("pid=") and marker in line}


@contextlib.contextmanager
def gunicorn(env, **kwargs):
    server = Gunicorn(env, **kwargs)
    try:
        yield server.start()
    finally:
        server.stop()
        with contextlib.suppress(OSError):
            os.unlink(server.log.name)


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target.

    ``cut()`` drops every connection and refuses new ones, as a stopped server
    does; ``cut(hang=True)`` drops them and then accepts but never answers, as a
    network partition does. ``restore()`` forwards again.
    """

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._conns = set()
        self._held = []
        self._hang = False
        self._listener = None
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(64)
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept_loop, args=(self._listener,), daemon=True)
        self._thread.start()
        return self

    def _accept_loop(self, listener):
        while not self._stop.is_set():
            ready, _, _ = select.select([listener], [], [], 0.1)
            if not ready:
                continue
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self._hang:
                self._held.append(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a, b):
        peers = {a: b, b: a}
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()
            with self._lock:
                self._conns.difference_update((a, b))

    def _drop_connections(self):
        with self._lock:
            conns, self._conns = list(self._conns), set()
        held, self._held = self._held, []
        for sock in conns + held:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def cut(self, hang=False):
        if hang:
            self._hang = True
        else:
            self._stop.set()
            if self._thread:
                self._thread.join(timeout=5)
            with contextlib.suppress(OSError):
                self._listener.close()
        self._drop_connections()

    def restore(self):
        self._hang = False
        self._drop_connections()
        if self._stop.is_set():
            self.start()
        return self

    def close(self):
        self._hang = False
        self.cut()


@contextlib.contextmanager
def tcp_proxy(host, port):
    proxy = TcpProxy(host, port).start()
    try:
        yield proxy
    finally:
        proxy.close()


def engine_for(url):
    from sqlalchemy import create_engine

    from config import database_url
    return create_engine(database_url(url))
