"""Validators shared by every way in (REST API, dashboard forms, Django admin) and by the pages
that render what they let through."""

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

WEB_SCHEMES = ("http", "https")
# The placeholder a completion URL may hold for the study's code (stands in for it while checking).
CODE_PLACEHOLDER = "{code}"

_web_url = URLValidator(schemes=list(WEB_SCHEMES))


def validate_web_url_template(value: str) -> None:
    """An http(s) address, where `{code}` stands for the completion code. Anything else
    (javascript:, data:, a bare path) is refused: participants' browsers follow this address on
    the same origin as the dashboard and the admin."""
    if not value:
        return
    try:
        _web_url(value.replace(CODE_PLACEHOLDER, "CODE"))
    except ValidationError as exc:
        raise ValidationError(
            "The completion URL must be a web address (https://…); {code} stands for the "
            "completion code.",
            code="invalid_web_url",
        ) from exc


def is_web_url(value: str) -> bool:
    """True only for an absolute http(s) address: what a page may link to or redirect to.

    Checked again where the URL is rendered, so a value stored before validation existed (or
    written around it) can never become a `javascript:` link.
    """
    if not value or any(ch in value for ch in "\x00\r\n\t") or value != value.strip():
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme.lower() in WEB_SCHEMES and bool(parts.netloc)
