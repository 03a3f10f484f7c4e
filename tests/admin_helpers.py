import json
from typing import Any

from django.test import Client
from django.urls import reverse

from elicitation.models import Study


def admin_form_data(client: Client, study: Study, **overrides: Any) -> dict[str, Any]:
    """What the admin's change page of `study` would post back unchanged, with `overrides`
    applied (lists and objects as the JSON the page's text areas hold)."""
    res = client.get(reverse("admin:elicitation_study_change", args=[study.pk]))
    assert res.status_code == 200
    form = res.context["adminform"].form
    data: dict[str, Any] = {}
    for name in form.fields:
        value = form[name].value()
        if isinstance(value, bool):
            value = "on" if value else ""
        data[name] = "" if value is None else value
    for name, value in overrides.items():
        data[name] = json.dumps(value) if isinstance(value, list | dict) else value
    return data
