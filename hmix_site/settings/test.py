from hmix_site.env import env
from hmix_site.settings.base import *  # noqa: F403

# Tests run against PostgreSQL, never the demo's SQLite file.
DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/hmix"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = True
DATABASES["default"]["CONN_MAX_AGE"] = 0

# Eager unless told otherwise: tests/analysis/test_celery_worker.py starts real workers on these
# settings with HMIX_CELERY_EAGER=false.
CELERY_TASK_ALWAYS_EAGER = env.bool("HMIX_CELERY_EAGER", default=True)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/14")

# The commands' tests seed the demo study, login included (never in production).
HMIX_DEMO_LOGIN_ALLOWED = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Media storage as base.py chose it (HMIX_S3_BUCKET), so the suite can run against a bucket too;
# tests/test_media_storage.py points it at its own S3 server.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Tests never run collectstatic; the live server serves static files from the finders.
MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("whitenoise")]  # noqa: F405
# seed_demo imports the committed IRI set (iri/demo_set/) instead of training and generating;
# tests/iri/test_demo_seed.py runs the generating path once.
HMIX_DEMO_IRIS = "committed"
