"""Hand-written SELECTs for the participant's hot path, loaded into model instances.

Django compiles a queryset to SQL each time it is evaluated. For the two or three reads of every
answer, that compilation cost more CPU than the database spent on the query (0.5-1 ms each,
measured with cProfile on the session read and the submit), so those reads are written once as
SQL here and loaded through RawQuerySet, which still applies every field's converters.
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


def partial(model: type[models.Model], **values: object) -> models.Model:
    """An instance with only these fields loaded (as from `.only()`): any other field is read
    from the database on first access, never silently given a default."""
    # from_db takes the loaded values in the model's field order.
    names = [f.attname for f in model._meta.concrete_fields if f.attname in values]
    if len(names) != len(values):
        raise ValueError(f"Not all of {sorted(values)} are fields of {model.__name__}.")
    return model.from_db(connection.alias, names, [values[name] for name in names])


@cache
def _converters(model: type[models.Model]) -> list[tuple[list[Any], Any]]:
    # What a compiled queryset would apply to each column: the backend's converters, then the
    # field's own (JSON decoding, for instance).
    out = []
    for field in model._meta.concrete_fields:
        col = field.get_col(model._meta.db_table)
        out.append((connection.ops.get_db_converters(col) + col.get_db_converters(connection), col))
    return out


def load(model: type[M], row: Sequence[Any]) -> M:
    """An instance from a row of `columns(model)`, converted as the ORM would."""
    values = []
    for value, (converters, col) in zip(row, _converters(model), strict=True):
        for converter in converters:
            value = converter(value, col, connection)
        values.append(value)
    names = [f.attname for f in model._meta.concrete_fields]
    return model.from_db(connection.alias, names, values)


def width(model: type[models.Model]) -> int:
    return len(model._meta.concrete_fields)
