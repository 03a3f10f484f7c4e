import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from bench.baseline_app.models import Hit


@csrf_exempt
def hit(request: HttpRequest, key: int) -> JsonResponse:
    """One indexed SELECT (the key's latest row) and one INSERT, for GET and POST alike."""
    latest = Hit.objects.filter(key=key).order_by("-id").values("id", "n").first()
    body = json.loads(request.body) if request.body else {}
    row = Hit.objects.create(key=key, n=(latest["n"] + 1) if latest else 1, body=body)
    return JsonResponse({"id": row.id, "previous": latest["id"] if latest else None, "n": row.n})
