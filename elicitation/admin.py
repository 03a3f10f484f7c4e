"""Read-mostly admin. Studies are editable (settings, texts); the journey's data is read-only
because its writes belong to the services (a hand-edited response would bypass validation).
"""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from elicitation.models import (
    Batch,
    BatchItem,
    ComprehensionAttempt,
    ImageSet,
    Participant,
    Response,
    SourceImage,
    Stimulus,
    Study,
    Trial,
)
from elicitation.selectors import study_entry_links, study_list_for_user


class ResearcherScopedAdmin(admin.ModelAdmin):
    """Superusers see everything; a researcher sees only rows of studies they work on."""

    study_path = "study"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        studies = study_list_for_user(user_id=request.user.pk).values("id")
        field = f"{self.study_path}__in" if self.study_path else "id__in"
        return qs.filter(**{field: studies})


class ReadOnlyAdmin(ResearcherScopedAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)


@admin.register(Study)
class StudyAdmin(ResearcherScopedAdmin):
    study_path = ""
    list_display = ("slug", "title", "trial_type", "status", "owner", "created_at")
    list_filter = ("trial_type", "status")
    search_fields = ("slug", "title")
    filter_horizontal = ("researchers",)
    readonly_fields = ("platform_links", "created_at", "updated_at")

    @admin.display(description="links for the crowd platforms")
    def platform_links(self, obj: Study) -> str:
        if obj.pk is None:
            return "-"
        links = study_entry_links(study=obj, base_url="")
        return format_html(
            "Prolific study URL (prefix your site's address): <code>{}</code><br>"
            "Completion URL: <code>{}</code>",
            links["prolific"],
            links["completion_url"] or "(set a completion code and URL)",
        )


class BatchItemInline(admin.TabularInline):
    model = BatchItem
    extra = 0
    raw_id_fields = ("stimulus",)


@admin.register(Batch)
class BatchAdmin(ReadOnlyAdmin):
    list_display = ("study", "number", "target")
    list_filter = ("study",)
    inlines = [BatchItemInline]


@admin.register(Stimulus)
class StimulusAdmin(ReadOnlyAdmin):
    list_display = ("key", "study", "kind", "class1", "class2", "lam", "true_class", "preview")
    list_filter = ("study", "kind")
    search_fields = ("key",)

    @admin.display(description="image")
    def preview(self, obj: Stimulus) -> str:
        if not obj.image:
            return "-"
        return format_html(
            '<img src="/img/{}.png" width="64" height="64" style="image-rendering:pixelated">',
            obj.public_id,
        )


@admin.register(Participant)
class ParticipantAdmin(ReadOnlyAdmin):
    list_display = ("token", "study", "platform", "external_id", "stage", "batch", "created_at")
    list_filter = ("study", "stage", "platform")
    search_fields = ("external_id", "token")


@admin.register(ComprehensionAttempt)
class ComprehensionAttemptAdmin(ReadOnlyAdmin):
    study_path = "participant__study"
    list_display = ("participant", "number", "passed", "created_at")


@admin.register(Trial)
class TrialAdmin(ReadOnlyAdmin):
    study_path = "participant__study"
    list_display = ("participant", "position", "kind", "stimulus")
    raw_id_fields = ("participant", "stimulus")


@admin.register(Response)
class ResponseAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "study",
        "participant",
        "stimulus",
        "kind",
        "top_class",
        "p1_pct",
        "second_class",
        "p2_pct",
        "rt_ms",
        "created_at",
    )
    list_filter = ("study", "kind")
    search_fields = ("stimulus__key", "participant__external_id")
    raw_id_fields = ("trial", "participant", "stimulus")


@admin.register(ImageSet)
class ImageSetAdmin(admin.ModelAdmin):
    list_display = ("name", "source", "created_at")


@admin.register(SourceImage)
class SourceImageAdmin(admin.ModelAdmin):
    list_display = ("image_set", "class_name", "ref")
    list_filter = ("image_set",)
