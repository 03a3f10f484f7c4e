from django.contrib import admin

from jobs.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("public_id", "kind", "status", "progress", "owner", "study", "created_at")
    list_filter = ("kind", "status")
    readonly_fields = ("public_id", "created_at", "updated_at", "finished_at")
