import os

from celery import Celery

# Production unless told otherwise: a forgotten variable must not run with DEBUG and the
# public development key. `make demo` and the tests name their settings module.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hmix_site.settings.production")

app = Celery("hmix")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
