"""The edge check of every request's path, query string, form fields and cookies, for the API and the pages alike.

JSON bodies are checked by the API's parser (apps/api/parsers.py); both use kiwiwhale/lib/unstorable.py. A request
that carries a string PostgreSQL cannot store is answered here — 400 in the contract's error shape under /api/, a
400 page elsewhere (404 for a path) — before any view, middleware or ORM call sees it.
"""

from django.http import JsonResponse
from django.shortcuts import render

from apps.api.exceptions import error_body
from kiwiwhale.lib.middleware import InlineMiddlewareMixin
from kiwiwhale.lib.unstorable import field_label, text_problem

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class InputGuardMiddleware(InlineMiddlewareMixin):
    # Inline: it reads the request's text; the pages it renders for a refusal come before the session or the user
    # is loaded (in the site's chain) or never (the API's chain answers JSON), so no query runs from the loop.
    def process_request(self, request):
        # A cookie that cannot be stored is no cookie: dropped rather than refused, or a browser holding one would
        # get nothing but errors until it is cleared (the session cookie is looked up in the database).
        for name in [name for name, value in request.COOKIES.items() if text_problem(name) or text_problem(value)]:
            del request.COOKIES[name]
        problem = _request_problem(request)
        if problem is None:
            return None
        field, why = problem
        if request.path_info.startswith("/api/"):
            body = error_body("invalid_request", f"{field}: {why}.", details=[{"field": field, "message": why}])
            return JsonResponse(body, status=400)
        status = 404 if field == "path" else 400
        return render(request, "404.html" if status == 404 else "400.html", {"problem": why}, status=status)


def _request_problem(request) -> tuple[str, str] | None:
    if problem := text_problem(request.path_info):
        return "path", problem
    sources = [request.GET]
    if request.method == "POST" and request.content_type in FORM_TYPES:
        sources.append(request.POST)
    for source in sources:
        for name, values in source.lists():
            if problem := text_problem(name):
                return field_label(name), f"has a name that {problem}"
            for value in values:
                if problem := text_problem(value):
                    return name, problem
    return None
