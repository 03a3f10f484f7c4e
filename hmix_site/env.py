from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env (never committed; see .env.example) fills in variables the shell did not set.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
