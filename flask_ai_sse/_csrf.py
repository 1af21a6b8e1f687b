"""Which requests a page on another site could have made: the rules alone, no Flask.

A browser lets any page send a *simple* request to any site, with that site's
cookies: ``GET``, ``HEAD`` or ``POST`` with no header beyond the CORS-safelisted
ones and a body that is a form or plain text (an ``<img>``, a ``<form>``, a
``fetch`` in ``no-cors`` mode). Anything else needs a CORS preflight first, which
fails unless the CORS policy lists the page's origin. So a request that changes
state is safe to serve when

* it could not have been simple: another method than ``POST``, a body that is not a
  form or text (``Content-Type: application/json``), or an ``X-Requested-With``
  header, which a page can only add to a preflighted request; or
* it says where it comes from, and that is this site: ``Sec-Fetch-Site:
  same-origin``, or an ``Origin`` equal to the request's own or listed by the CORS
  policy (by name or pattern: ``"*"`` does not vouch for a site's form posts).

Everything else is refused, including a bare ``POST`` with no ``Origin`` (an old
browser may omit it): a script that is no browser adds a header or a JSON body.

``GET /stream`` (the ``EventSource`` route) is a simple request by nature; with
``AI_SSE_ALLOW_GET_STREAM = "same-origin"`` it is served only to pages of this
origin (``Sec-Fetch-Site``) and of the origins the CORS policy lists.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ._cors import CorsPolicy

__all__ = [
    "MARKER_HEADER",
    "SAME_ORIGIN",
    "from_trusted_page",
    "may_change_state",
    "needs_preflight",
]

#: ``AI_SSE_ALLOW_GET_STREAM``'s value for "only from pages of this origin".
SAME_ORIGIN = "same-origin"
#: The body types a page may send cross-site without a preflight.
SIMPLE_CONTENT_TYPES = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
)
#: The methods a page may send cross-site without a preflight.
SIMPLE_METHODS = frozenset({"GET", "HEAD", "POST"})
#: A request header a page can only set on a preflighted request (jQuery and many
#: clients send it); any value will do.
MARKER_HEADER = "X-Requested-With"

Header = Callable[[str], "str | None"]


def needs_preflight(method: str, header: Header) -> bool:
    """Would a browser have asked first (CORS preflight) before sending this request?"""
    if method.upper() not in SIMPLE_METHODS:
        return True
    if header(MARKER_HEADER):
        return True
    content_type = (header("Content-Type") or "").split(";", 1)[0].strip().lower()
    return bool(content_type) and content_type not in SIMPLE_CONTENT_TYPES


def from_trusted_page(header: Header, own_origin: str, cors: CorsPolicy | None) -> bool:
    """Does the browser say the request comes from this origin or one the CORS policy lists?

    ``own_origin`` is the request's own ``scheme://host[:port]``.
    """
    if (header("Sec-Fetch-Site") or "").lower() == "same-origin":
        return True
    origin = header("Origin")
    if not origin or origin.lower() == "null":
        return False
    if origin.lower() == own_origin.lower():
        return True
    return cors is not None and _listed(cors, origin)


def _listed(cors: CorsPolicy, origin: str) -> bool:
    """The policy names ``origin`` itself (exactly or by pattern), not only as ``"*"``."""
    lowered = origin.lower()
    for allowed in cors.origins:
        if isinstance(allowed, re.Pattern):
            if allowed.fullmatch(origin):
                return True
        elif allowed == lowered:
            return True
    return False


def may_change_state(method: str, header: Header, own_origin: str, cors: CorsPolicy | None) -> bool:
    """Serve this state-changing request? (See the module's docs.)"""
    return needs_preflight(method, header) or from_trusted_page(header, own_origin, cors)
