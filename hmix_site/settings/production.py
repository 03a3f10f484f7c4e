from django.core.exceptions import ImproperlyConfigured

from hmix_site.env import env
from hmix_site.settings.base import *  # noqa: F403

# Production only tightens, and refuses to start rather than run with a public or guessable
# secret key (sessions, CSRF and password-reset tokens are signed with it) or with DEBUG pages
# that show settings and tracebacks to anyone.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if (
    SECRET_KEY == DEV_SECRET_KEY  # noqa: F405
    # Django's own bar for a strong key (check --deploy, security.W009).
    or len(SECRET_KEY) < 50
    or len(set(SECRET_KEY)) < 5
    or SECRET_KEY.startswith("django-insecure-")
):
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set to a random value of at least 50 characters "
        "(not the development default); generate one with "
        '`python -c "import secrets; print(secrets.token_urlsafe(50))"`.'
    )
if env.bool("DJANGO_DEBUG", default=False):
    raise ImproperlyConfigured(
        "DJANGO_DEBUG is true under production settings; DEBUG pages show settings and "
        "tracebacks to anyone. Use hmix_site.settings.local for debugging."
    )
DEBUG = False
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# A year of HSTS for the host and its subdomains, with the preload directive: the values
# `check --deploy` asks for (security.W004/W005/W021). Preloading only happens once someone
# submits the domain at hstspreload.org; set DJANGO_SECURE_HSTS_PRELOAD=false to keep the
# directive out of the header if the domain's subdomains cannot all serve HTTPS.
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
# Rate limits count in the cache, which every web process must share (axes keeps login
# failures in PostgreSQL).
HMIX_CACHE_URL = env.str("HMIX_CACHE_URL")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": HMIX_CACHE_URL,
    }
}
