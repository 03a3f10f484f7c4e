from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from analysis.models import SoftLabel
from elicitation.admin import ResearcherScopedAdmin, StudyListFilter


@admin.register(SoftLabel)
class SoftLabelAdmin(ResearcherScopedAdmin):
    list_display = (
        "stimulus",
        "study",
        "method",
        "n_annotations",
        "n_annotators",
        "entropy",
        "updated_at",
    )
    list_filter = (StudyListFilter, "method")
    search_fields = ("stimulus__key",)

    # Labels are derived data: recompute them, never edit them.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
