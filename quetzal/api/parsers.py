"""The API's only request parser: JSON, bounded in size and depth, valid Unicode.

DRF reads a JSON body straight from the request stream, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE check,
and Python's decoder recurses once per nesting level: a large body was read whole and a body nested
100,000 deep was a server error. Here the body is read up to the limit (413 beyond), nesting is capped
(400), and lone surrogates, which no later step can encode, are refused (400).
"""

from __future__ import annotations

import json
import re

from django.conf import settings
from rest_framework import exceptions, parsers, status

MAX_DEPTH = 32
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"
    default_detail = "The request body is too large."


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _check(data: object, max_depth: int) -> None:
    """Walk the parsed body without recursion: depth and surrogates."""
    pending: list[tuple[object, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if _LONE_SURROGATE.search(value):
                raise exceptions.ParseError("JSON strings must be valid Unicode (no lone surrogates).")
        elif isinstance(value, dict | list):
            if depth > max_depth:
                raise exceptions.ParseError(f"JSON is nested more than {max_depth} levels deep.", code="too_deep")
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            pending.extend((item, depth + 1) for item in items)


class JSONParser(parsers.JSONParser):
    """application/json, at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes and MAX_DEPTH levels."""

    max_depth = MAX_DEPTH

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(raw) > limit:
            raise RequestTooLarge(f"The request body is larger than the {limit} bytes this API accepts.")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.loads(raw.decode(encoding), parse_constant=_refuse_constant)
        except RecursionError:
            raise exceptions.ParseError(f"JSON is nested more than {self.max_depth} levels deep.", code="too_deep")
        except (LookupError, UnicodeDecodeError, ValueError) as error:
            raise exceptions.ParseError(f"JSON parse error - {error}")
        _check(data, self.max_depth)
        return data
