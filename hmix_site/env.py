from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

# Settings come from the process environment only. `.env` is docker compose's file (env_file):
# reading it here too would point `make demo` / `make test` at compose-only host names.
env = environ.Env()
