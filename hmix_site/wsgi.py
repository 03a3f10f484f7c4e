import os

from django.core.wsgi import get_wsgi_application

# Production unless told otherwise: a forgotten variable must not run with DEBUG and the
# public development key. `make demo` and the tests name their settings module.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hmix_site.settings.production")
application = get_wsgi_application()
