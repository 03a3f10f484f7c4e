"""PostgreSQL renders the big exports itself: `COPY (SELECT ...) TO STDOUT` instead of a model
instance, a dict and a csv.writer call per row in Python (about 12x faster on 1,000,000 responses,
bench/export_speed.py).

The SQL reproduces, byte for byte, what the portable Python writers in analysis/exports.py
produce (they remain the SQLite path and the reference the tests compare against):
- floats as Python's repr (`60.0`, `1e-05`, `1234567890123456.8`, `nan`);
- JSON cells as `json.dumps(v, separators=(",", ":"))` in CSV and `json.dumps(v)` in JSON Lines,
  both ASCII-only (`\\u00e9`). PostgreSQL prints jsonb with ", " and ": " and raw UTF-8, so the
  common case only drops the separators' spaces; a value whose strings hold ", " or ": ", whose
  text is not ASCII, or whose numbers Python would print differently (`0.50`, `0.00001`, more
  than 17 digits) takes a slower tokenising path (SLOW_JSON), still in SQL;
- empty strings as empty CSV fields (NULLIF: PostgreSQL would write `""`);
- text cells that a spreadsheet would run as a formula (starting with = + - @, a tab or a
  carriage return) prefixed with a single quote (`csv_safe`; exports.csv_safe in Python).
One difference cannot be expressed in COPY: Python's csv module leaves a field holding a carriage
return (and no comma, quote or newline) unquoted, PostgreSQL quotes it. A CR byte can only reach
the output inside such a field (JSON escapes its own), so a window whose bytes hold one is
rendered again by the Python writer (`python_rows`), which is exact and, in practice, never runs.

Rows are read in windows of WINDOW rows cut by response id (one COPY each, into memory, then
yielded): memory stays flat, one connection serves the whole export (no thread, so it works
inside a request's or a test's transaction), and an export job can report progress between
windows.
"""

import io
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

from django.db import connection
from psycopg2.extensions import TRANSACTION_STATUS_INERROR

from elicitation.models import Batch, Participant, Response, Stimulus, Study

# Rows per COPY: about 8 MB of responses CSV held at once. Smaller windows lose more to each
# query's start (its joins, its memoized renderings warming up again): 10,000 measured slower.
WINDOW = 20_000

# A JSON string token, a number token, or anything else (brackets, separators, true/false/null).
_TOKENS = r'("(?:[^"\\]|\\.)*")|(-?[0-9][0-9.eE+-]*)|([^"0-9-]+)'
# A number Python would print differently from its jsonb text: trailing zeros after the first
# decimal, below 1e-4, 18 or more significant digits (matches inside strings only cost time).
_ODD_NUMBER = r"\.[0-9]+0(?:[^0-9]|$)|0\.0000|[1-9](?:\.?[0-9]){17}"
# ... and, for the compact CSV form, a string token holding ", " or ": ".
_SEPARATOR_IN_STRING = r'^(?:[^"]|"(?:[^"\\]|\\.)*")*"(?:[^"\\]|\\.)*(?:, |: )'


def pyfloat(x: str) -> str:
    """SQL for repr(float) of the float8 expression `x` (NULL stays NULL).

    PostgreSQL's float8 output is the same shortest round-trip digits as Python's repr; they
    differ only in the form: integral values (`60` / `60.0`), 1e15 <= |x| < 1e16 (PostgreSQL
    switches to an exponent one decade earlier) and the non-finite names. Between 1e16 and
    1e20 (integers below 2^64) PostgreSQL prints the exact integer's 17 digits rather than the
    shortest ones; such a value becomes a carriage return, which makes copy_windows write its
    window with Python (measured over 20,000 random doubles, tests/analysis/test_export_copy)."""
    return (
        f"(CASE WHEN {x} = 'NaN'::float8 THEN 'nan' WHEN {x} = 'Infinity'::float8 THEN 'inf' "
        f"WHEN {x} = '-Infinity'::float8 THEN '-inf' "
        f"WHEN abs({x}) < 1e15 AND {x} = trunc({x}) THEN {x}::text || '.0' "
        f"WHEN abs({x}) >= 1e15 AND abs({x}) < 1e16 THEN ({x}::text)::numeric::text "
        f"|| CASE WHEN {x} = trunc({x}) THEN '.0' ELSE '' END "
        f"WHEN abs({x}) >= 1e16 AND abs({x}) < 1e20 THEN chr(13) "
        f"ELSE {x}::text END)"
    )


def csv_safe(x: str) -> str:
    """SQL: exports.csv_safe of the text expression `x` (NULL stays NULL): a cell a spreadsheet
    would read as a formula gets a leading single quote (OWASP, "CSV Injection")."""
    return (
        f"(CASE WHEN left({x}, 1) IN ('=', '+', '-', '@', chr(9), chr(13)) "
        f"THEN '''' || {x} ELSE {x} END)"
    )


def _ascii_json(s: str) -> str:
    """SQL: the JSON text `s` with every character outside printable ASCII written as Python's
    ensure_ascii does (\\u00e9; a surrogate pair above U+FFFF). jsonb already escapes the
    control characters the same way, and only strings can hold non-ASCII characters."""
    return (
        "(SELECT string_agg(CASE WHEN c ~ '[ -~]' THEN c "  # noqa: S608 (constant SQL fragments; values are parameters)
        "WHEN ascii(c) < 65536 THEN '\\u' || lpad(to_hex(ascii(c)), 4, '0') "
        "ELSE '\\u' || to_hex(55296 + ((ascii(c) - 65536) >> 10)) "
        "|| '\\u' || to_hex(56320 + ((ascii(c) - 65536) & 1023)) END, '' ORDER BY i) "
        f"FROM regexp_split_to_table({s}, '') WITH ORDINALITY AS chars(c, i))"
    )


def _slow_json(t: str, *, compact: bool) -> str:
    """SQL: jsonb text `t` re-rendered token by token (Python's separators, float repr, ASCII)."""
    rest = "replace(replace(m[3], ', ', ','), ': ', ':')" if compact else "m[3]"
    return (
        "(SELECT string_agg(CASE "  # noqa: S608 (constant SQL fragments; values are parameters)
        f"WHEN m[1] IS NOT NULL THEN CASE WHEN m[1] ~ '[^ -~]' THEN {_ascii_json('m[1]')} "
        "ELSE m[1] END "
        f"WHEN m[2] IS NOT NULL THEN CASE WHEN strpos(m[2], '.') > 0 "
        f"THEN {pyfloat('m[2]::float8')} ELSE m[2] END "
        f"ELSE {rest} END, '' ORDER BY i) "
        f"FROM regexp_matches({t}, '{_TOKENS}', 'g') WITH ORDINALITY AS tokens(m, i))"
    )


def _odd(t: str) -> str:
    """SQL: whether jsonb text `t` needs the tokenising path: not all printable ASCII (jsonb
    escapes the control characters, so more characters than bytes or a DEL), or an odd number.
    Cheap tests first: a regular expression costs about a second per million values."""
    return (
        f"(octet_length({t}) <> char_length({t}) OR strpos({t}, chr(127)) > 0 "
        f"OR (strpos({t}, '.') > 0 AND {t} ~ '{_ODD_NUMBER}'))"
    )


def json_text(t: str, *, compact: bool) -> str:
    """SQL: `json.dumps` of the value whose jsonb text is `t` (compact: separators (",", ":"))."""
    if compact:
        return (
            f"(CASE WHEN {_odd(t)} OR {t} ~ '{_SEPARATOR_IN_STRING}' "
            f"THEN {_slow_json(t, compact=True)} "
            f"ELSE replace(replace({t}, ', ', ','), ': ', ':') END)"
        )
    return f"(CASE WHEN {_odd(t)} THEN {_slow_json(t, compact=False)} ELSE {t} END)"


def csv_cell(j: str, t: str) -> str:
    """SQL: exports._csv_cell of a JSON value (jsonb `j`, its text `t`): lists and objects as
    compact JSON, strings as they are, numbers as Python prints them, booleans as True/False,
    null as an empty field."""
    string = f"NULLIF({j} #>> '{{}}', '')"
    return (
        f"(CASE left({t}, 1) WHEN '{{' THEN {json_text(t, compact=True)} "
        f"WHEN '[' THEN {json_text(t, compact=True)} "
        f"WHEN '\"' THEN {csv_safe(string)} "
        "WHEN 't' THEN 'True' WHEN 'f' THEN 'False' WHEN 'n' THEN NULL "
        f"ELSE CASE WHEN strpos({t}, '.') > 0 THEN {pyfloat(f'{t}::float8')} ELSE {t} END END)"
    )


def _json_cell(j: str, t: str) -> str:
    """SQL: json.dumps of a JSON value (its text `t`; SQL NULL, a missing key, is null)."""
    return f"coalesce({json_text(t, compact=False)}, 'null')"


def json_str(x: str) -> str:
    """SQL: json.dumps of the text expression `x` (ASCII-only, like Python's default)."""
    return (
        f"(CASE WHEN {x} ~ '[^ -~]' THEN {_ascii_json(f'to_json({x})::text')} "
        f"ELSE to_json({x})::text END)"
    )


def _iso(ts: str) -> str:
    """SQL: datetime.isoformat() of a timestamptz as Django returns it (UTC, microseconds only
    when there are any). The ISO DateStyle set by copy_windows prints `2024-05-01 10:00:00.1234`
    (trailing zeros dropped): a quarter of to_char's cost."""
    text = f"replace(({ts} AT TIME ZONE 'UTC')::text, ' ', 'T')"
    return f"(rpad({text}, CASE WHEN length({text}) > 19 THEN 26 ELSE 19 END, '0') || '+00:00')"


def _names_list(indices: str, names: str, sep: str) -> str:
    """SQL: the JSON list of the class names (`names`: their JSON texts) of the jsonb index
    list `indices`, written out for the usual zero to three ticks, a subquery beyond."""
    cases = ["WHEN 0 THEN '[]'"]
    for n in (1, 2, 3):
        items = f" || '{sep}' || ".join(
            f"({names})[({indices} ->> {i})::int + 1]" for i in range(n)
        )
        cases.append(f"WHEN {n} THEN '[' || {items} || ']'")
    longer = (
        f"'[' || (SELECT string_agg(({names})[e::int + 1], '{sep}' ORDER BY i) "  # noqa: S608 (constant SQL fragments; values are parameters)
        f"FROM jsonb_array_elements_text({indices}) WITH ORDINALITY AS ticks(e, i)) || ']'"
    )
    return f"(CASE jsonb_array_length({indices}) {' '.join(cases)} ELSE {longer} END)"


class Chunk(bytes):
    """Rendered rows: bytes that know how many rows they hold (for a job's progress)."""

    rows: int

    def __new__(cls, data: bytes, rows: int) -> "Chunk":
        chunk = super().__new__(cls, data)
        chunk.rows = rows
        return chunk


# The JSON columns of a response: (name, jsonb expression). An imported row's raw `subject` is
# the participant's platform id: it stays only when the export asks for raw ids
# (%(keep_subject)s, see class_params; a constant, so the planner drops the CASE when true).
_JSON_COLUMNS = (
    ("class_order", "(r.display -> 'class_order')"),
    ("value", "r.value"),
    (
        "raw",
        "(CASE WHEN %(keep_subject)s OR jsonb_typeof(r.raw) <> 'object' "
        "THEN r.raw ELSE r.raw - 'subject' END)",
    ),
)


def _responses_from(render: Callable[[str, str], str]) -> str:
    """FROM ... WHERE ... ORDER BY of a window of responses, with each JSON column rendered by
    `render(jsonb, text)` in a lateral subquery of its own, read as `<name>_c.cell`. Responses
    of withdrawn participants are left out.

    The lateral depends on that one column only, so the planner can memoize it: a study's
    answers repeat (the same class order, the same typed percents), and a repeated value is
    rendered once. OFFSET 0 keeps each value's text conversion from being inlined, and so
    repeated, in every CASE branch."""
    laterals = " ".join(
        f"CROSS JOIN LATERAL (SELECT {render(j, 't.t')} AS cell "  # noqa: S608 (constant SQL fragments; values are parameters)
        f"FROM (SELECT {j}::text AS t OFFSET 0) t OFFSET 0) {name}_c"
        for name, j in _JSON_COLUMNS
    )
    return (
        f"FROM {Response._meta.db_table} r "
        f"JOIN {Participant._meta.db_table} p ON p.id = r.participant_id "
        f"LEFT JOIN {Batch._meta.db_table} b ON b.id = p.batch_id "
        f"JOIN {Stimulus._meta.db_table} s ON s.id = r.stimulus_id "
        f"{laterals} "
        "WHERE r.study_id = %(study)s AND r.id > %(lo)s AND r.id <= %(hi)s "
        "AND p.withdrawn_at IS NULL ORDER BY r.id"
    )


def responses_csv_sql() -> str:
    """One CSV row per response, the columns of exports.RESPONSE_COLUMNS; the platform id
    only when %(raw_ids)s, the pseudonym always."""
    external_id = "NULLIF(p.external_id, '')"
    key = "NULLIF(s.key, '')"
    columns = [
        "r.id",
        # Pseudonyms are hex digits, platforms and kinds fixed words: nothing to neutralise.
        "NULLIF(p.pseudonym, '')",
        "NULLIF(p.platform, '')",
        f"CASE WHEN %(raw_ids)s THEN (CASE WHEN %(ids_plain)s THEN {external_id} "
        f"ELSE {csv_safe(external_id)} END) END",
        "b.number",
        f"(CASE WHEN %(keys_plain)s THEN {key} ELSE {csv_safe(key)} END)",
        "NULLIF(r.kind, '')",
        "r.position",
        "r.rt_ms",
        # %(classes)s holds the class names already neutralised (exports._responses_copy).
        "NULLIF((%(classes)s::text[])[r.top_class + 1], '')",
        pyfloat("r.p1_pct"),
        "NULLIF((%(classes)s::text[])[r.second_class + 1], '')",
        pyfloat("r.p2_pct"),
        _names_list("r.impossible", "%(class_json)s::text[]", ","),
        "class_order_c.cell",
        "value_c.cell",
        "raw_c.cell",
        "r.client_key",
        _iso("r.created_at"),
    ]
    select = ", ".join(columns)
    return f"COPY (SELECT {select} {_responses_from(csv_cell)}) TO STDOUT WITH (FORMAT csv)"


def responses_jsonl_sql() -> str:
    """One JSON Lines row per response: exports.response_record_dict through json.dumps."""
    parts = [
        "'{\"id\": ' || r.id",
        f"', \"participant\": ' || {json_str('p.pseudonym')}",
        f"', \"platform\": ' || {json_str('p.platform')}",
        f"', \"external_id\": ' || CASE WHEN %(raw_ids)s THEN {json_str('p.external_id')} "
        "ELSE 'null' END",
        "', \"batch\": ' || coalesce(b.number::text, 'null')",
        f"', \"stimulus\": ' || {json_str('s.key')}",
        f"', \"kind\": ' || {json_str('r.kind')}",
        "', \"position\": ' || r.position",
        "', \"rt_ms\": ' || r.rt_ms",
        "', \"top_class\": ' || coalesce((%(class_json)s::text[])[r.top_class + 1], '\"\"')",
        f"', \"p1\": ' || coalesce({pyfloat('r.p1_pct')}, 'null')",
        "', \"second_class\": ' || coalesce((%(class_json_or_null)s::text[])"
        "[r.second_class + 1], 'null')",
        f"', \"p2\": ' || coalesce({pyfloat('r.p2_pct')}, 'null')",
        f"', \"impossible\": ' || {_names_list('r.impossible', '%(class_json)s::text[]', ', ')}",
        "', \"class_order\": ' || class_order_c.cell",
        "', \"value\": ' || value_c.cell",
        "', \"raw\": ' || raw_c.cell",
        "', \"client_key\": \"' || r.client_key || '\"'",
        f"', \"created_at\": \"' || {_iso('r.created_at')} || '\"}}'",
    ]
    line = " || ".join(parts)
    # A JSON line holds no raw newline, carriage return or control character (JSON escapes
    # them), so CSV with control characters as quote and delimiter passes it through verbatim.
    return (
        f"COPY (SELECT {line} {_responses_from(_json_cell)}) "
        "TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
    )


# Text a spreadsheet would run (exports.FORMULA_PREFIXES), as a PostgreSQL regular expression.
_FORMULA_START = "^[-=+@\t\r]"


def keeps_raw_subject(*, study: Study, raw_ids: bool) -> bool:
    """Whether the responses export keeps the `subject` of the raw rows: with raw ids, or when
    the study has no imported rows (only a legacy import writes them, and marks the study)."""
    return raw_ids or "legacy_import" not in (study.settings or {})


def class_params(study: Study, *, raw_ids: bool = False) -> dict[str, Any]:
    """The query parameters of a study's responses export (raw_ids: keep the platform ids).

    The per-row neutralising of stimulus keys and platform ids is skipped (a constant the
    planner folds) when a look at the study's few distinct values finds none to neutralise:
    about a tenth of a large export's time otherwise."""
    classes = list(study.classes)
    keys_plain = not Stimulus.objects.filter(study=study, key__regex=_FORMULA_START).exists()
    ids_plain = not (
        raw_ids
        and Participant.objects.filter(study=study, external_id__regex=_FORMULA_START).exists()
    )
    return {
        "raw_ids": raw_ids,
        "keep_subject": keeps_raw_subject(study=study, raw_ids=raw_ids),
        "keys_plain": keys_plain,
        "ids_plain": ids_plain,
        "classes": classes,
        "class_json": [json.dumps(c) for c in classes],
        "class_json_or_null": [json.dumps(c) if c else "null" for c in classes],
    }


def response_windows(*, study: Study, until: int, size: int | None = None) -> list[tuple[int, int]]:
    """(lo, hi] response-id ranges of `size` rows each (the last may hold fewer), up to `until`.

    One index-only pass over the study's ids; only every size-th id is returned."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) AS n "  # noqa: S608 (constant SQL fragments; values are parameters)
            f"FROM {Response._meta.db_table} WHERE study_id = %s AND id <= %s) ids "
            "WHERE mod(n, %s) = 0 ORDER BY id",
            [study.id, until, size or WINDOW],
        )
        cuts = [row[0] for row in cursor.fetchall()]
    bounds = [0, *cuts]
    windows = list(itertools.pairwise(bounds))
    if not cuts or cuts[-1] < until:
        windows.append((bounds[-1], until))
    return windows


def copy_windows(
    *,
    sql: str,
    params: dict[str, Any],
    windows: list[tuple[int, int]],
    python_rows: Callable[[int, int], Iterator[str]],
) -> Iterator[Chunk]:
    """COPY each (lo, hi] window of `sql` into memory and yield it.

    A window holding a carriage-return byte is yielded from `python_rows(lo, hi)` instead (see
    the module docstring)."""
    connection.ensure_connection()
    with connection.cursor() as cursor:
        # The rendering's many CASE branches and subplans make the planner's cost estimate
        # large enough to JIT-compile every window: about a second of compiling per 10,000
        # rows that take a tenth of that to run. Off for the export, back to the default after.
        cursor.execute("SET jit = off")
        cursor.execute("SET datestyle = 'ISO'")
        try:
            for lo, hi in windows:
                query = cursor.mogrify(sql, {**params, "lo": lo, "hi": hi})
                buf = io.BytesIO()
                cursor.cursor.copy_expert(query, buf)
                rows = cursor.cursor.rowcount
                data = buf.getvalue()
                del buf
                if b"\r" in data:
                    data = "".join(python_rows(lo, hi)).encode()
                if data:
                    yield Chunk(data, rows)
        finally:
            # Not in a failed transaction: that one's SET is rolled back with it.
            if connection.connection.get_transaction_status() != TRANSACTION_STATUS_INERROR:
                cursor.execute("RESET jit")
                cursor.execute("RESET datestyle")
