"""The API's JSON parser: DRF's, plus the edge check of everything a body holds (kiwiwhale/lib/unstorable.py)."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from apps.api.exceptions import ApiError
from kiwiwhale.lib.unstorable import JSON_MAX_DEPTH, data_problem


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:  # nesting beyond what Python's decoder can walk
            raise ParseError(f"nested deeper than {JSON_MAX_DEPTH} levels") from exc
        problem = data_problem(data)
        if problem:
            field, why = problem
            raise ApiError(400, "invalid_request", f"{field}: {why}.", details=[{"field": field, "message": why}])
        return data
