from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from elicitation.selectors import study_list_for_user
from jobs.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Read-only: jobs are started and advanced by their services. A user other than a superuser
    sees the jobs they started and those of the studies they work on."""

    list_display = ("public_id", "kind", "status", "progress", "owner", "study", "created_at")
    list_filter = ("kind", "status")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        studies = study_list_for_user(user_id=request.user.pk).values("id")
        return qs.filter(Q(owner_id=request.user.pk) | Q(study__in=studies))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)
