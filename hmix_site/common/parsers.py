"""The JSON parser of every API view (REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]).

DRF's own parser hands hostile bodies on to code that fails with a 500: JSON nested a few
thousand levels deep (10 KB) makes Python's recursive decoder raise RecursionError, and a
string holding NUL (\\u0000) or an unpaired surrogate (\\ud800) parses fine but PostgreSQL
refuses it in text and jsonb columns. This parser refuses both with a 400 naming the problem,
before any view code runs.
"""

import codecs
import json
import re
from collections.abc import Mapping
from itertools import accumulate
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# A JSON string literal (escapes included): the brackets inside one do not nest anything.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE = re.compile("[\ud800-\udfff]")


def json_depth(text: str) -> int:
    """How deeply `text` nests arrays and objects, counted without decoding it.

    Linear and non-recursive (two C-level regex passes and one running sum over the brackets),
    so it is safe on any input. On malformed JSON the count may differ from what a decoder
    would see, but a decoder fails there before going any deeper.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _printable(path: str) -> str:
    return path.replace("\x00", "\\u0000")


def unstorable_text(data: Any) -> str | None:
    """The first place in decoded JSON whose text PostgreSQL cannot store, described; or None.

    Keys count too (a jsonb object key is text). Iterative, so depth is no concern here.
    """
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        where = _printable(path) or "the body"
        if isinstance(value, str):
            if "\x00" in value:
                return f"{where}: text may not contain NUL (\\u0000) characters."
            if _SURROGATE.search(value):
                return f"{where}: text may not contain unpaired surrogates (\\ud800-\\udfff)."
        elif isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key or _SURROGATE.search(key):
                    return f"{where}: a key may not contain NUL or unpaired surrogate characters."
                stack.append((f"{path}.{key}" if path else key, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    return None


def json_loads_checked(text: str) -> Any:
    """`text` decoded as JSON, or ParseError naming the problem: too deep, not JSON, or text
    that PostgreSQL cannot store. For the API's parser and for the views that read JSON
    themselves."""
    limit = settings.HMIX_JSON_MAX_DEPTH
    depth = json_depth(text)
    if depth > limit:
        raise ParseError(
            f"JSON parse error - the body nests arrays and objects {depth} levels deep; "
            f"at most {limit} are accepted."
        )
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise ParseError(f"JSON parse error - {exc}") from exc
    # Only a \u escape can put NUL or a surrogate into decoded text (a raw control character
    # is a decoding error), so bodies without one skip the walk.
    if "\\u" in text:
        problem = unstorable_text(data)
        if problem is not None:
            raise ParseError(f"JSON parse error - {problem}")
    return data


def _refuse_constant(name: str) -> Any:
    # As DRF's STRICT_JSON: NaN and Infinity are not JSON and no column stores them.
    raise ValueError(f"{name} is not valid JSON.")


class SafeJSONParser(JSONParser):
    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
        except UnicodeDecodeError as exc:
            raise ParseError(f"JSON parse error - the body is not valid {encoding}: {exc}") from exc
        return json_loads_checked(text)
