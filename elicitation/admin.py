"""Read-mostly admin over the same services, selectors and scoping as the dashboard.

Superusers see everything; other staff see only what the dashboard shows them: the studies they
own or collaborate on (and those studies' rows), their own and the shared image sets. Study
changes go through services.study_update and services.study_set_status, so the lifecycle's
rules and the API's validators apply here too; the journey's data is read-only because its
writes belong to the services (a hand-edited response would bypass validation).
"""

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Field, Model, QuerySet
from django.forms import BaseModelForm
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from elicitation import lifecycle_selectors, services
from elicitation.models import (
    Batch,
    BatchItem,
    ComprehensionAttempt,
    ImageSet,
    Participant,
    ParticipantWithdrawal,
    Response,
    SourceImage,
    Stimulus,
    Study,
    StudyTransition,
    Trial,
)
from elicitation.selectors import (
    image_set_list_for_user,
    study_entry_links,
    study_get_by_slug,
    study_list_for_user,
)
from hmix_site.common.exceptions import ApplicationError


def admin_studies(request: HttpRequest) -> QuerySet[Study]:
    """The studies this admin user may see: all for a superuser, else the dashboard's list."""
    if request.user.is_superuser:
        return Study.objects.order_by("slug")
    return study_list_for_user(user_id=request.user.pk).order_by("slug")


def admin_image_sets(request: HttpRequest) -> QuerySet[ImageSet]:
    """Image sets this admin user may see: all for a superuser, else their own and shared ones."""
    if request.user.is_superuser:
        return ImageSet.objects.order_by("name")
    return image_set_list_for_user(user_id=request.user.pk)


class StudyListFilter(admin.SimpleListFilter):
    """Filter by study, offering only the studies the user may see (Django's own related-field
    filter lists every study's slug)."""

    title = "study"
    parameter_name = "study"

    def __init__(
        self, request: HttpRequest, params: Any, model: type[Model], model_admin: Any
    ) -> None:
        self.study_path = getattr(model_admin, "study_path", "study") or "id"
        super().__init__(request, params, model, model_admin)

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(pk), slug) for pk, slug in admin_studies(request).values_list("pk", "slug")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value or not value.isdigit():
            return queryset
        return queryset.filter(**{f"{self.study_path}__id": int(value)})


class ImageSetListFilter(admin.SimpleListFilter):
    title = "image set"
    parameter_name = "image_set"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(pk), name) for pk, name in admin_image_sets(request).values_list("pk", "name")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value or not value.isdigit():
            return queryset
        return queryset.filter(image_set__id=int(value))


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
    """Rows written by participants or by the services (sessions, answers, logs): shown, never
    edited or deleted here, not even by a superuser. Removing a participant's data is a
    withdrawal (elicitation/privacy_services.participant_withdraw: dashboard, API or the
    withdraw_participant command), which logs it and recomputes what depended on it; a delete
    in the admin would do neither."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class StructureAdmin(ReadOnlyAdmin):
    """Stimuli and batches: part of the study's structure, which the lifecycle freezes once the
    study is launched. Deleting one then is refused, and bulk deletion (which cannot ask per
    row) is not offered."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None or not request.user.is_superuser:
            return False
        return not lifecycle_selectors.study_stimuli_locked_reason(study=obj.study)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


# Study fields the admin edits through services.study_update (its texts and settings, and the
# structure while the lifecycle allows it); `status` goes through services.study_set_status.
STUDY_SERVICE_FIELDS = (*services.STUDY_TEXT_FIELDS, *services.STUDY_STRUCTURAL_FIELDS)


class StudyAdminForm(forms.ModelForm):
    """Parses the posted fields, then asks the services whether the change is allowed (without
    writing), so a refusal shows on the form and nothing is saved. StudyAdmin.save_model then
    makes the change through the same services."""

    class Meta:
        model = Study
        fields = (
            "title",
            "status",
            "trial_type",
            "classes",
            "repeats",
            "participants_per_batch",
            "lease_minutes",
            "consent_html",
            "instructions",
            "comprehension",
            "max_comprehension_failures",
            "debrief_questions",
            "completion_code",
            "pays_without_code",
            "completion_url",
            "settings",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        study = self.instance
        self.study_changes: dict[str, Any] = {}
        self.new_status: str | None = None
        self._refuse_locked_fields(study)
        if self.errors:
            return data
        changed = {n: data[n] for n in self.changed_data if n in STUDY_SERVICE_FIELDS}
        try:
            self.study_changes = services.study_update_check(study=study, **changed)
        except ValidationError as exc:
            self._add_service_errors(exc)
            return data
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from exc
        if "status" in self.changed_data:
            # Checked against the study as it will be once the other changes are made, so that
            # a code set and a launch in one save pass the checklist together.
            preview = Study.objects.get(pk=study.pk)
            for name, value in self.study_changes.items():
                setattr(preview, name, value)
            try:
                services.study_transition_check(study=preview, status=data["status"])
            except ApplicationError as exc:
                self.add_error("status", exc.message)
            except ValidationError as exc:
                self.add_error("status", " ".join(exc.messages))
            else:
                self.new_status = data["status"]
        return data

    def _refuse_locked_fields(self, study: Study) -> None:
        """A locked field is read-only on the page; a post that still carries a different value
        for it (a stale page, a hand-made request) is refused, not silently ignored."""
        for name, reason in lifecycle_selectors.study_locked_fields(study=study).items():
            if name in self.fields or name not in self.data:
                continue
            model_field = Study._meta.get_field(name)
            assert isinstance(model_field, Field)
            field = model_field.formfield()
            try:
                posted = field.clean(self.data[name]) if field is not None else None
            except ValidationError:
                posted = object()
            if posted != getattr(study, name):
                self.add_error(None, f"{name} {reason}")

    def _add_service_errors(self, exc: ValidationError) -> None:
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc)
            return
        for name, messages in exc.message_dict.items():
            for message in messages:
                self.add_error(name if name in self.fields else None, message)


@admin.register(Study)
class StudyAdmin(ResearcherScopedAdmin):
    form = StudyAdminForm
    study_path = ""
    list_display = ("slug", "title", "trial_type", "status", "owner", "created_at")
    list_filter = ("trial_type", "status")
    search_fields = ("slug", "title")
    # Never editable here: the slug names the study in participants' links; ownership and
    # collaborators change only from the dashboard (a collaborator must not take ownership);
    # the label method has no service that checks it.
    always_readonly = (
        "slug",
        "owner",
        "researchers",
        "label_method",
        "label_params",
        "platform_links",
        "status_history",
        "created_at",
        "updated_at",
    )

    # New studies start in the study builder (dashboard or API), which makes the creator the
    # owner and fills in the texts of the interface; the admin only edits existing ones.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Only the owner deletes a study (or a superuser); never in bulk from the list.
        if obj is None:
            return bool(request.user.is_superuser)
        return bool(request.user.is_superuser or obj.owner_id == request.user.pk)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        locked = tuple(lifecycle_selectors.study_locked_fields(study=obj)) if obj else ()
        return (*self.always_readonly, *locked)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> HttpResponse:
        # Django answers a refused admin form with 200; say 400, as the API and dashboard do.
        response = super().render_change_form(request, context, add, change, form_url, obj)
        form = context["adminform"].form
        if request.method == "POST" and form.is_bound and form.errors:
            response.status_code = 400
        return response

    def save_model(
        self, request: HttpRequest, obj: Study, form: BaseModelForm, change: bool
    ) -> None:
        assert isinstance(form, StudyAdminForm)
        study = study_get_by_slug(slug=obj.slug)
        if form.study_changes:
            services.study_update(study=study, **form.study_changes)
        if form.new_status is not None:
            services.study_set_status(
                study=study,
                status=form.new_status,
                actor_id=request.user.pk,
                via=StudyTransition.Via.ADMIN,
            )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Nothing: the study has no inlines, and its collaborators change on the dashboard."""

    @admin.display(description="links for the crowd platforms")
    def platform_links(self, obj: Study) -> str:
        if obj.pk is None:
            return "-"
        links = study_entry_links(study=obj, base_url="")
        return format_html(
            "Prolific study URL (prefix your site's address): <code>{}</code><br>"
            "Completion on Prolific: <code>{}</code><br>"
            "Completion on MTurk: posted to MTurk's externalSubmit<br>"
            "Completion for direct links: <code>{}</code>",
            links["prolific"],
            links["prolific_completion_url"] or "(set a completion code and URL)",
            links["completion_url"] or "(shows the code only)",
        )

    @admin.display(description="status history")
    def status_history(self, obj: Study) -> str:
        rows = lifecycle_selectors.study_transition_list(study=obj)
        if not rows:
            return "-"
        return format_html_join(
            mark_safe("<br>"),
            "{}: {} → {} by {} ({})",
            (
                (
                    t.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    t.from_status,
                    t.to_status,
                    t.actor.get_username() if t.actor else "–",
                    t.get_via_display(),
                )
                for t in rows
            ),
        )


class BatchItemInline(admin.TabularInline):
    model = BatchItem
    extra = 0
    raw_id_fields = ("stimulus",)


@admin.register(Batch)
class BatchAdmin(StructureAdmin):
    list_display = ("study", "number", "target")
    list_filter = (StudyListFilter,)
    inlines = [BatchItemInline]


@admin.register(Stimulus)
class StimulusAdmin(StructureAdmin):
    list_display = ("key", "study", "kind", "class1", "class2", "lam", "true_class", "preview")
    list_filter = (StudyListFilter, "kind")
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
    list_filter = (StudyListFilter, "stage", "platform")
    search_fields = ("external_id", "token", "pseudonym")


@admin.register(ParticipantWithdrawal)
class ParticipantWithdrawalAdmin(ReadOnlyAdmin):
    """The withdrawal log; withdrawing goes through the dashboard, the API or the command."""

    list_display = ("pseudonym", "study", "mode", "n_responses", "by", "created_at")
    list_filter = (StudyListFilter, "mode")
    search_fields = ("pseudonym",)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the log is the record that a withdrawal happened


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
    list_filter = (StudyListFilter, "kind")
    search_fields = ("stimulus__key", "participant__external_id")
    raw_id_fields = ("trial", "participant", "stimulus")


class ImageSetScopedAdmin(admin.ModelAdmin):
    """Image sets and their images: read-only here (uploads go through the builder), each user
    sees their own and the shared sets, and the owner can never be changed or cleared (a set
    without an owner is shared with everyone)."""

    image_set_path = "id"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(**{f"{self.image_set_path}__in": admin_image_sets(request).values("id")})

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)


@admin.register(ImageSet)
class ImageSetAdmin(ImageSetScopedAdmin):
    list_display = ("name", "source", "owner", "created_at")


@admin.register(SourceImage)
class SourceImageAdmin(ImageSetScopedAdmin):
    image_set_path = "image_set"
    list_display = ("image_set", "class_name", "ref")
    list_filter = (ImageSetListFilter,)


@admin.register(StudyTransition)
class StudyTransitionAdmin(ReadOnlyAdmin):
    list_display = ("study", "from_status", "to_status", "actor", "via", "created_at")
    list_filter = (StudyListFilter, "to_status", "via")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the record of who changed what stays
