from django.contrib import admin
from django.http import HttpRequest

from iri.models import Network


@admin.register(Network)
class NetworkAdmin(admin.ModelAdmin):
    """Read-only: networks are uploaded and trained through the API and the dashboard, which
    check the file and the layer (iri.services)."""

    list_display = ("name", "owner", "source", "regime", "layer", "input_size", "created_at")
    list_filter = ("source", "regime")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Network | None = None) -> bool:
        return False
