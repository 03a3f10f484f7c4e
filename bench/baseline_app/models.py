from django.db import models


class Hit(models.Model):
    """One row per request; the view reads a key's latest row through the (key, id) index."""

    id = models.BigAutoField(primary_key=True)
    key = models.PositiveIntegerField()
    n = models.PositiveIntegerField()
    body = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    # Declared: the type checker runs on H-Mix's settings, where this app is not installed.
    objects: "models.Manager[Hit]" = models.Manager()

    class Meta:
        app_label = "baseline_app"
        indexes = [models.Index(fields=["key", "id"], name="baseline_hit_key")]

    def __str__(self) -> str:
        return f"{self.key}:{self.n}"
