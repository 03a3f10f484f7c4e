from typing import Any

from rest_framework import serializers
from rest_framework.utils import html

_EXPECTED = (
    # DRF coerces across JSON types (0 -> "0", false -> 0.0, 0 -> False); the schema promises
    # the type, so a value of another type is refused. Checked in this order (subclasses first).
    (serializers.BooleanField, (bool,), "a boolean"),
    (serializers.IntegerField, (int,), "an integer"),
    (serializers.FloatField, (int, float), "a number"),
    (serializers.ChoiceField, (str,), "a string"),
    (serializers.CharField, (str,), "a string"),
    (serializers.UUIDField, (str,), "a string"),
)


def json_type_errors(field: serializers.Field, value: Any) -> Any:
    """The type errors of `value` for `field` (nested like DRF's error details), or None."""
    if value is None:
        return None  # allow_null is the field's own business
    if isinstance(field, serializers.ListSerializer | serializers.ListField):
        if not isinstance(value, list):
            return ["Expected a list."]
        child = field.child
        if child is None:
            return None
        items = {i: e for i, item in enumerate(value) if (e := json_type_errors(child, item))}
        return items or None
    if isinstance(field, serializers.Serializer):
        if not isinstance(value, dict):
            return ["Expected an object."]
        errors = {
            name: e
            for name, sub in field.fields.items()
            if name in value and (e := json_type_errors(sub, value[name]))
        }
        return errors or None
    if isinstance(field, serializers.DictField):
        if not isinstance(value, dict):
            return ["Expected an object."]
        entries = {k: e for k, item in value.items() if (e := json_type_errors(field.child, item))}
        return entries or None
    for kind, types, words in _EXPECTED:
        if isinstance(field, kind):
            if isinstance(value, bool) and bool not in types:
                return [f"Expected {words}, not a boolean."]
            if kind is serializers.IntegerField and isinstance(value, float):
                # JSON has one number type: 8450.0 is the integer 8450 (as JSON Schema says).
                return None if value.is_integer() else [f"Expected {words}."]
            if not isinstance(value, types):
                return [f"Expected {words}."]
            return None
    return None


class JsonTypedSerializer(serializers.Serializer):
    """Input that arrived as JSON: each value must have the JSON type its field's schema states."""

    def to_internal_value(self, data: Any) -> Any:
        # Form input (multipart uploads) is all text: DRF's own parsing applies there, as it
        # does to a body that is not an object (which it refuses in its own words).
        typed = isinstance(data, dict) and not html.is_html_input(data)
        errors = json_type_errors(self, data) if typed else None
        if errors:
            raise serializers.ValidationError(errors)
        return super().to_internal_value(data)
