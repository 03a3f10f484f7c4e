"""The scratch PostgreSQL database every benchmark starts from."""

import os

import psycopg2

PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgres://postgres@127.0.0.1:5432/postgres")


def fresh_postgres(name: str) -> str:
    """Drop and re-create database `name` (nothing else is touched); returns its URL."""
    conn = psycopg2.connect(PG_ADMIN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
