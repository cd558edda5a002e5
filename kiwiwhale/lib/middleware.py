"""Middlewares that run on either side of the ASGI/WSGI divide without a thread hop.

Django's MiddlewareMixin runs `process_request` and `process_response` through `sync_to_async` when its chain is
async, a thread hop each way, because a hook may block. Hooks that do no I/O (headers, timers, context variables,
checks of the request's text) need no thread: `InlineMiddlewareMixin` calls them inline in both modes. The API's
chain (kiwiwhale/asgi.py) is made only of these, so a bearer request stays on the event loop up to its view.
"""

from django.middleware import security
from django.utils.deprecation import MiddlewareMixin


class InlineMiddlewareMixin(MiddlewareMixin):
    """For middlewares whose hooks never block: in an async chain they run on the event loop."""

    async def __acall__(self, request):
        response = self.process_request(request) if hasattr(self, "process_request") else None
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = self.process_response(request, response)
        return response


class SecurityMiddleware(InlineMiddlewareMixin, security.SecurityMiddleware):
    """Django's: its hooks only read settings and set headers."""
