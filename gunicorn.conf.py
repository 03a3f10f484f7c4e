"""Gunicorn settings of the web service (docker-compose.yml `web`, the Dockerfile's CMD).

Every value is a choice, explained below; the ones that depend on the machine can be changed
per deployment through the environment (.env).

Sizing in one line: no request does long work any more (exports, dataset bundles, legacy
imports, stimulus generation and image-set uploads all run as Celery jobs, see jobs.models.Job),
so a request is short and spends most of its time waiting on PostgreSQL; a few processes with a
few threads each serve it well, and the product workers × threads bounds the database
connections the web holds.
"""

import os


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


# The port docker-compose.yml publishes and the web healthcheck calls.
bind = "0.0.0.0:8000"

# Threads in a few processes: the participant API and the dashboard wait on the database and
# on storage (the GIL is released while they wait), so threads overlap those waits at a fraction
# of a process's memory; several processes still use several cores and survive one crashing.
worker_class = "gthread"
# WEB_CONCURRENCY is the conventional knob (Gunicorn itself reads it as the default); 3 suits a
# 2-core host, (2 × cores) − 1 a larger one.
workers = _int("WEB_CONCURRENCY", 3)
threads = _int("GUNICORN_THREADS", 4)

# Database connections: Django keeps one per thread for CONN_MAX_AGE seconds (60, see
# DATABASE_CONN_MAX_AGE), so the web holds up to workers × threads = 12 of them, the Celery
# worker one per pool process (its concurrency, the host's cores by default) and beat one;
# PostgreSQL's default max_connections is 100. Raise workers or threads only while
# web + worker + beat + admin sessions stay well below max_connections.

# With gthread workers the timeout does not limit a request: the worker's main loop checks in
# every second while its threads serve requests. It catches a worker whose main loop is stuck
# (a deadlock, a C call holding the GIL) and restarts it. 30 s (Gunicorn's default) is ample now
# that requests are short; a long streaming download (GET /api/studies/<slug>/export/) is not
# cut off by it.
timeout = _int("GUNICORN_TIMEOUT", 30)
# On a restart or stop (a deploy, max_requests below) in-flight requests get this long to
# finish. docker-compose.yml gives the web container a longer stop_grace_period, so Docker does
# not kill gunicorn before it has drained.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Seconds an idle client connection stays open for its next request: the participant pages
# send one request per trial every few seconds, so reusing the connection saves a TCP (and, at
# the proxy, TLS) handshake. Behind a proxy that keeps upstream connections open, set this
# above the proxy's idle timeout, or it may reuse a connection gunicorn is closing (a 502).
keepalive = _int("GUNICORN_KEEPALIVE", 5)

# Restart each worker after about this many requests: numpy/Pillow (result plots, image
# checks) and Python's allocator do not always return memory, so a long-lived worker's
# footprint only grows. The jitter spreads the restarts so the workers never restart together.
max_requests = _int("GUNICORN_MAX_REQUESTS", 1000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 100)

# The heartbeat file that `timeout` watches: in a container /tmp is on the overlay filesystem,
# where a write can stall long enough for a healthy worker to be killed; /dev/shm is memory.
worker_tmp_dir = "/dev/shm"  # noqa: S108 - a directory Gunicorn writes its own heartbeat to

# Access log on stdout, for `docker compose logs web`.
accesslog = "-"
