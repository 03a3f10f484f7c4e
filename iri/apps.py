from django.apps import AppConfig


class IriConfig(AppConfig):
    name = "iri"
    verbose_name = "IRI generation"
    default_auto_field = "django.db.models.BigAutoField"
