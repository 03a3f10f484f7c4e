from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "hmix_site.common"
    label = "common"
