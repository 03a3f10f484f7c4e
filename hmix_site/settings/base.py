"""Every setting and every environment read lives here; the other modules only adjust."""

from datetime import timedelta

from celery.schedules import crontab

from hmix_site.env import BASE_DIR, env
from hmix_site.storage import FILE_SYSTEM_STORAGE, s3_storage

# The default is public (it is in this file): production.py refuses to start with it.
DEV_SECRET_KEY = "insecure-local-only-key-change-me"  # noqa: S105
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=DEV_SECRET_KEY)
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# `seed_demo` creates a staff login whose password is printed in the README; only local.py and
# test.py allow it.
HMIX_DEMO_LOGIN_ALLOWED = False

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    "hmix_site.common",
    "elicitation",
    "analysis",
    "dashboard",
    "jobs",
    "iri",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every response (CONTENT_SECURITY_POLICY below).
    "hmix_site.common.csp.ScopedCSPMiddleware",
    # Before anything that could read the body (CSRF's form parsing, DRF's parsers).
    "hmix_site.common.body_limits.RequestBodyLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before sessions and auth: a NUL in the URL, a header or a form answers 400 at once.
    "hmix_site.common.middleware.RefuseNulMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Turns a refused participant arrival (hmix_site.common.ratelimits) into a 429 page.
    "hmix_site.common.ratelimits.RateLimitedMiddleware",
    # Last, as django-axes asks: it answers a locked-out login with the lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "hmix_site.urls"
WSGI_APPLICATION = "hmix_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The demo runs on an embedded SQLite file; every real deployment sets DATABASE_URL to PostgreSQL.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take SQLite's write lock up front, so concurrent participants queue
    # instead of failing with "database is locked" halfway through a transaction (Django 5.1+).
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes checks every login (the dashboard's and the admin's) before the password does.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:studies"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = env.path("HMIX_MEDIA_ROOT", default=BASE_DIR / "media")
# Media (image sets' source images, stimulus images, jobs' uploads and results). Without a
# bucket they are files under MEDIA_ROOT, which web and worker must share (one machine, or one
# volume). With one they are private objects in S3-compatible storage that every web and worker
# host reads and writes, so hosts can be added on other machines.
HMIX_S3_BUCKET = env.str("HMIX_S3_BUCKET", default="")
STORAGES = {
    "default": (
        s3_storage(
            bucket=HMIX_S3_BUCKET,
            endpoint_url=env.str("HMIX_S3_ENDPOINT_URL", default=""),
            region=env.str("HMIX_S3_REGION", default=""),
            access_key_id=env.str("HMIX_S3_ACCESS_KEY_ID", default=""),
            secret_access_key=env.str("HMIX_S3_SECRET_ACCESS_KEY", default=""),
            prefix=env.str("HMIX_S3_PREFIX", default=""),
            addressing_style=env.str("HMIX_S3_ADDRESSING_STYLE", default=""),
        )
        if HMIX_S3_BUCKET
        else FILE_SYSTEM_STORAGE
    ),
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Request and upload sizes, checked on the declared length before a body is read
# (hmix_site/common/body_limits.py answers 413). A participant sends a few hundred bytes per
# answer; the researcher's JSON and forms (study texts) stay well under a megabyte.
HMIX_MAX_PARTICIPANT_BODY_BYTES = env.int("HMIX_MAX_PARTICIPANT_BODY_BYTES", default=64 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("HMIX_MAX_REQUEST_BODY_BYTES", default=1024 * 1024)
# Each uploaded file (zip, CIFAR batch, manifest, legacy CSV); images are small, and a cap keeps
# a stray multi-gigabyte upload off the disk and out of the worker.
HMIX_MAX_UPLOAD_BYTES = env.int("HMIX_MAX_UPLOAD_BYTES", default=50 * 1024 * 1024)
# A whole multipart request: the five CIFAR-10 training batches and their meta file fit.
HMIX_MAX_UPLOAD_REQUEST_BYTES = env.int(
    "HMIX_MAX_UPLOAD_REQUEST_BYTES", default=8 * HMIX_MAX_UPLOAD_BYTES
)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# What a zip may inflate to, read from its central directory before anything is inflated and
# enforced again while reading (a header can lie): each member, and all members together.
HMIX_MAX_ZIP_MEMBER_BYTES = env.int("HMIX_MAX_ZIP_MEMBER_BYTES", default=64 * 1024 * 1024)
HMIX_MAX_ZIP_TOTAL_BYTES = env.int("HMIX_MAX_ZIP_TOTAL_BYTES", default=512 * 1024 * 1024)
HMIX_MAX_IMAGE_PIXELS = env.int("HMIX_MAX_IMAGE_PIXELS", default=4096 * 4096)
# Deepest nesting of arrays and objects a JSON body may have (hmix_site/common/parsers.py).
# Every body the API takes nests 4 levels or fewer; Python's decoder fails near 1,000.
HMIX_JSON_MAX_DEPTH = env.int("HMIX_JSON_MAX_DEPTH", default=32)

# --- Content-Security-Policy (django-csp; docs/deployment.md#csp) ---
# Every page's scripts and styles are files served from this site: no inline script, no event
# handler attributes, no style attributes (tests/test_csp.py loads every page in Chromium and
# counts violations). Images may come from this site (stimuli are served by the app, media
# streamed from the bucket), data: and blob: URLs (drawn frames); nothing else, so an image in a
# researcher's consent HTML cannot tell a third-party host a participant's address. Forms post
# here only, and no other site may frame these pages.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Relaxed under these path prefixes only. The researcher API's HTML pages (DRF's browsable API
# and the Swagger UI, drawn by those libraries' own templates) carry a <style> element: styles
# may be inline there, scripts still may not (the Swagger UI loads its setup from a URL). They
# show JSON and the schema, never researcher-written HTML. The Django admin (5.2) needs nothing:
# its scripts are files and take their data from data- attributes (tests/test_csp.py).
# A participant's pages may also post to MTurk: a finished HIT is handed back by a form posted
# to MTurk's externalSubmit (the hosts of elicitation/exits.py's MTURK_SUBMIT_HOSTS, and only
# those). Everything else there still posts to this site only.
_MTURK_SUBMIT_HOSTS = ["https://www.mturk.com", "https://workersandbox.mturk.com"]
HMIX_CSP_PATH_OVERRIDES = {
    "/api/": {"style-src": ["'self'", "'unsafe-inline'"]},
    "/p/": {"form-action": ["'self'", *_MTURK_SUBMIT_HOSTS]},
}

# --- Abuse limits (docs/deployment.md#rate-limits) ---
# Request counters live in the default cache (login failures: in the database, django-axes).
# Every web process must share the cache, or each would count on its own: production settings
# require HMIX_CACHE_URL (a Redis database); without one (the demo, one process) the cache is
# in-process memory.
HMIX_CACHE_URL = env.str("HMIX_CACHE_URL", default="")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": HMIX_CACHE_URL}
        if HMIX_CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
# Behind a reverse proxy REMOTE_ADDR is the proxy's: name the WSGI key of the header it sets
# (HTTP_X_REAL_IP, or HTTP_X_FORWARDED_FOR whose last address is the one the proxy saw).
# Only set it when a proxy you run overwrites that header, or clients choose their address.
HMIX_CLIENT_IP_HEADER = env.str("HMIX_CLIENT_IP_HEADER", default="")
# Participant arrivals (a new or resumed session, over the study link or the API), counted per
# client address and per study; django-ratelimit's "count/period" syntax (s, m, h, d; "30/10m"
# is 30 in 10 minutes). Per address, generous for a lab behind one NAT; per study, above the
# pace of a crowd-platform launch. Raise them for a faster launch.
HMIX_RATE_LIMITS_ENABLED = env.bool("HMIX_RATE_LIMITS_ENABLED", default=True)
HMIX_ARRIVAL_RATE_PER_IP = env.str("HMIX_ARRIVAL_RATE_PER_IP", default="30/10m")
HMIX_ARRIVAL_RATE_PER_STUDY = env.str("HMIX_ARRIVAL_RATE_PER_STUDY", default="120/m")
# Researcher API requests per user (token or session), DRF's "count/period" syntax (s, m, h, d).
HMIX_API_RATE_PER_USER = env.str("HMIX_API_RATE_PER_USER", default="600/min")
RATELIMIT_ENABLE = HMIX_RATE_LIMITS_ENABLED
RATELIMIT_IP_META_KEY = "hmix_site.common.ratelimits.client_ip"
# Logins (django-axes): after this many wrong passwords for one username from one address,
# that pair is locked out for the cool-off, right password or not.
AXES_FAILURE_LIMIT = env.int("HMIX_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("HMIX_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "hmix_site.common.ratelimits.client_ip"
AXES_LOCKOUT_CALLABLE = "hmix_site.common.ratelimits.login_locked_out"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only, with a depth limit and no NUL; the views that take files name MultiPartParser.
    # (Form parsing would read "" as "left out" and accept bodies the schema calls invalid.)
    "DEFAULT_PARSER_CLASSES": ["hmix_site.common.parsers.SafeJSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # drf-spectacular's, plus the error statuses each operation can answer.
    "DEFAULT_SCHEMA_CLASS": "hmix_site.common.schema.HmixAutoSchema",
    "EXCEPTION_HANDLER": "hmix_site.common.api.exception_handler",
    # Per user, HMIX_API_RATE_PER_USER; participants (no account) are limited per arrival.
    "DEFAULT_THROTTLE_CLASSES": ["hmix_site.common.ratelimits.ResearcherRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # ?format= names an export's file format (csv, json, npy...), not a DRF renderer.
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "H-Mix API",
    "DESCRIPTION": (
        "Participant journey (token in the URL is the participant's session) and researcher "
        "access to studies, responses, soft labels and exports (token authentication)."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Celery: without a broker URL tasks run in-process (the demo); with one they go to workers.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
# HMIX_CELERY_EAGER overrides that choice either way (the real-worker tests set it to false).
CELERY_TASK_ALWAYS_EAGER = env.bool("HMIX_CELERY_EAGER", default=not CELERY_BROKER_URL)
# Eager tasks never touch a broker; the in-memory transport keeps kombu from guessing one.
CELERY_BROKER_URL = CELERY_BROKER_URL or "memory://localhost/"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
# IRI generation and model training run on their own queue, so heavy workers (a GPU where
# there is one) can serve it on their own hosts: `celery -A hmix_site worker -Q iri`.
CELERY_TASK_ROUTES = {"iri.tasks.*": {"queue": "iri"}}
CELERY_TASK_SOFT_TIME_LIMIT = 5 * 60
CELERY_TASK_TIME_LIMIT = 6 * 60
# Crash safety. What a killed worker (SIGKILL, OOM, lost host) leaves behind, and who picks it
# up: https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-acks-late and
# https://docs.celeryq.dev/en/stable/getting-started/backends-and-brokers/redis.html#caveats
#
# Acknowledge a message only once its task has finished, so a task whose worker dies is
# delivered again instead of dropped. Safe because every task here is idempotent (house rule;
# each task also says so in its own decorator): a second delivery recomputes the same rows or
# finds its job already claimed (jobs.services.job_start).
CELERY_TASK_ACKS_LATE = True
# A pool child killed mid-task (OOM killer, SIGKILL) is treated like a dead worker: requeue
# the message rather than acknowledge it as failed. A task that kills its process every time
# cannot loop for ever: job tasks find their job claimed on the second delivery, and the
# recomputes are cheap, bounded queries.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One message reserved per pool process. With acks_late every reserved message is unacked, and
# a killed worker's unacked messages wait for the visibility timeout below; prefetching more
# would strand more of them (and starve idle workers while one hoards the queue).
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis has no acknowledgements of its own: kombu keeps each delivered message in an "unacked"
# set, and any live worker puts it back on its queue once it has been unacked this long.
# Celery's default is one hour, which is how long labels waited after a crash. 10 minutes:
# a killed worker's tasks run again within HMIX_CELERY_VISIBILITY_TIMEOUT_S plus
# HMIX_CELERY_RESTORE_INTERVAL_S of the kill (given one live worker). A task still running
# after this long (an export may take an hour) is delivered a second time as well; that copy
# finds its job claimed and returns at once, which is why the timeout may be shorter than the
# longest task. Countdowns (a few seconds here) must stay well below it.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("HMIX_CELERY_VISIBILITY_TIMEOUT_S", default=10 * 60),
    # How often a worker looks for such messages. kombu's default looks every 10 × 10 s; with
    # the throttle at 1 every interval looks (one sorted-set range query on Redis).
    "unacked_restore_interval": env.int("HMIX_CELERY_RESTORE_INTERVAL_S", default=30),
    "unacked_restore_throttle": 1,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    # Every minute: https://crontab.guru/#*_*_*_*_*
    "reclaim-abandoned-batch-leases": {
        "task": "elicitation.tasks.participant_leases_reclaim",
        "schedule": crontab(minute="*"),
    },
    # Every minute: https://crontab.guru/#*_*_*_*_* (refreshes lost with a killed worker wait
    # no longer than this plus HMIX_RECOMPUTE_RECONCILE_AFTER_S)
    "reconcile-pending-recomputes": {
        "task": "analysis.tasks.pending_recomputes_reconcile",
        "schedule": crontab(minute="*"),
    },
    # Every 10 minutes: https://crontab.guru/#*/10_*_*_*_* (also re-enqueues jobs left pending
    # by a task that gave up, and fails them in the end: jobs.tasks)
    "fail-jobs-of-crashed-workers": {
        "task": "jobs.tasks.jobs_fail_stale",
        "schedule": crontab(minute="*/10"),
    },
}

# A stale-results mark (analysis.recompute_services) this old with no refresh in sight is taken
# for lost with its task and enqueued again by the reconciler above.
HMIX_RECOMPUTE_RECONCILE_AFTER_S = env.int("HMIX_RECOMPUTE_RECONCILE_AFTER_S", default=60)

# A participant who stops interacting for this long loses their batch slot (reclaimed by beat).
HMIX_DEFAULT_LEASE = timedelta(minutes=env.int("HMIX_LEASE_MINUTES", default=60))

# The key of the participant pseudonyms in exports (elicitation/pseudonyms.py). Keep it secret
# and never change it: pseudonyms are stored when a participant arrives, so a new key names
# only later participants differently. Defaults to the secret key.
HMIX_PSEUDONYM_KEY = env.str("HMIX_PSEUDONYM_KEY", default="") or SECRET_KEY

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    # One "task succeeded" line per response drowns everything else when tasks run in-process.
    "loggers": {
        "celery.app.trace": {"level": env.str("CELERY_TRACE_LOG_LEVEL", default="WARNING")}
    },
}
