"""Hand-written SELECTs for the participant's hot path, loaded into model instances.

Django compiles a queryset to SQL each time it is evaluated. For the two or three reads of every
answer, that compilation cost more CPU than the database spent on the query (0.5-1 ms each,
measured with cProfile on the session read and the submit), so those reads are written once as
SQL and loaded here. Values cross the boundary as the ORM would send and read them on the
current backend (a UUID is a native uuid on PostgreSQL and 32 hex digits on the demo's SQLite,
for instance), so the same SQL serves both.
"""

from collections.abc import Sequence
from functools import cache
from typing import Any, TypeVar

from django.db import connection, models

M = TypeVar("M", bound=models.Model)


def quoted(name: str) -> str:
    return connection.ops.quote_name(name)


def columns(model: type[models.Model], alias: str = "") -> str:
    """The model's concrete columns, for a SELECT list (prefixed by a table alias if given)."""
    prefix = f"{quoted(alias)}." if alias else ""
    return ", ".join(f"{prefix}{quoted(f.column)}" for f in model._meta.concrete_fields)


def table(model: type[models.Model]) -> str:
    return quoted(model._meta.db_table)


def for_update_of(alias: str) -> str:
    """` FOR UPDATE OF alias` where the backend locks rows (SQLite locks the whole database for
    a write transaction instead, and has no such clause)."""
    if connection.features.has_select_for_update_of:
        return f" FOR UPDATE OF {quoted(alias)}"
    return " FOR UPDATE" if connection.features.has_select_for_update else ""


def param(model: type[models.Model], field_name: str, value: Any) -> Any:
    """`value` as the ORM would pass it for `model.field_name` on this backend."""
    field = model._meta.get_field(field_name)
    assert isinstance(field, models.Field)  # a concrete column, not a relation's reverse side
    return field.get_db_prep_value(field.to_python(value), connection)


@cache
def _converters(model: type[models.Model]) -> dict[str, tuple[list[Any], Any]]:
    # What a compiled queryset applies to each column: the backend's converters (UUIDs and
    # datetimes on SQLite, for instance), then the field's own (JSON decoding).
    out = {}
    for field in model._meta.concrete_fields:
        col = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        out[field.attname] = (converters, col)
    return out


def _converted(model: type[models.Model], attname: str, value: Any) -> Any:
    converters, col = _converters(model)[attname]
    for converter in converters:
        value = converter(value, col, connection)
    return value


def load(model: type[M], row: Sequence[Any]) -> M:
    """An instance from a row of `columns(model)`, converted as the ORM would."""
    names = [f.attname for f in model._meta.concrete_fields]
    values = [_converted(model, name, v) for name, v in zip(names, row, strict=True)]
    return model.from_db(connection.alias, names, values)


def partial(model: type[M], **values: Any) -> M:
    """An instance with only these fields loaded (as from `.only()`), converted as the ORM
    would; any other field is read from the database on first access, never silently given a
    default."""
    # from_db takes the loaded values in the model's field order.
    names = [f.attname for f in model._meta.concrete_fields if f.attname in values]
    if len(names) != len(values):
        raise ValueError(f"Not all of {sorted(values)} are fields of {model.__name__}.")
    converted = [_converted(model, name, values[name]) for name in names]
    return model.from_db(connection.alias, names, converted)


def width(model: type[models.Model]) -> int:
    return len(model._meta.concrete_fields)
