from django import template
from django.utils.safestring import SafeString, mark_safe

from hmix_site.common.html import clean_html

register = template.Library()


@register.filter
def sanitize_html(value: str) -> SafeString:
    return mark_safe(clean_html(value or ""))  # noqa: S308 (cleaned just above)
