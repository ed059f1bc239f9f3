"""Who may use the dashboard, and proof that a change was asked for by its own pages.

- **Token.** With a token, every page and API call needs it: ``Authorization: Bearer
  TOKEN``, or the session cookie the login form sets (HttpOnly, SameSite=Strict). Without
  one, the dashboard only answers requests addressed to a loopback name (``127.0.0.1``,
  ``localhost``, ``[::1]``), which defeats DNS rebinding; `check_bind` refuses a token-less
  dashboard on any other address.
- **CSRF.** Every change (replay, delete, correct, route) is a POST that carries the
  session's CSRF token, in the ``csrf`` form field or the ``X-CSRF-Token`` header, compared
  in constant time. The token is an HMAC of the session id under a key drawn at start, so
  nothing is stored; a request authenticated by a bearer header (a script, not a browser
  with ambient cookies) needs none. A POST whose ``Origin`` is another site is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from jira_orchestrator._core.errors import JiraOrchestratorError

__all__ = [
    "COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "TOKEN_ENV",
    "DashboardSecurityError",
    "Guard",
    "Session",
    "check_bind",
    "is_loopback",
]

TOKEN_ENV = "JIRA_ORCHESTRATOR_DASHBOARD_TOKEN"
"""The environment variable the ``dashboard`` command reads its token from."""
COOKIE = "jo_dashboard"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
_MIN_TOKEN = 16


class DashboardSecurityError(JiraOrchestratorError, ValueError):
    """The dashboard would be reachable beyond this machine without a token, or the token
    is too weak."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is loopback."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Raise `DashboardSecurityError` for a non-loopback ``host`` without a token, or a
    token shorter than 16 characters."""
    if token is not None and len(token) < _MIN_TOKEN:
        raise DashboardSecurityError(
            f"the dashboard token must be at least {_MIN_TOKEN} characters "
            f"(got {len(token)}): make one with `python -c 'import secrets; "
            "print(secrets.token_urlsafe())'`"
        )
    if token is None and not is_loopback(host):
        raise DashboardSecurityError(
            f"refusing to serve the dashboard on {host}, beyond this machine, without a "
            f"token: set ${TOKEN_ENV} (or bind 127.0.0.1)"
        )


@dataclass(frozen=True)
class Session:
    """One browser's session: its id, whether it signed in with the token, and whether
    this request came with a bearer header (then no CSRF token is needed)."""

    id: str
    signed_in: bool
    bearer: bool = False
    new: bool = False


def _host_of(header: str) -> str:
    """The host of a ``Host`` header (``[::1]:8642`` -> ``::1``)."""
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """Authentication, sessions and CSRF for one dashboard (see the module's text)."""

    def __init__(self, token: str | None = None, *, key: bytes | None = None) -> None:
        if token is not None:
            check_bind("127.0.0.1", token)
        self.token = token
        self._key = key or secrets.token_bytes(32)
        self.refused = 0

    def _mac(self, purpose: str, value: str) -> str:
        return hmac.new(self._key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()

    def _cookie_session(self, request: Request) -> Session | None:
        raw = request.cookies.get(COOKIE, "")
        parts = raw.split(".")
        if len(parts) != 3 or len(parts[0]) > 64:
            return None
        sid, flag, mac = parts
        if flag not in ("0", "1") or not hmac.compare_digest(
            mac.encode(), self._mac("session", f"{sid}.{flag}").encode()
        ):
            return None
        return Session(sid, flag == "1")

    def _bearer(self, request: Request) -> bool:
        if self.token is None:
            return False
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), self.token.encode()
        )

    def check_token(self, value: str) -> bool:
        """Whether ``value`` is the token (constant time)."""
        return self.token is not None and hmac.compare_digest(value.encode(), self.token.encode())

    def host_allowed(self, request: Request) -> bool:
        """Without a token, only requests addressed to a loopback name are answered."""
        if self.token is not None:
            return True
        return is_loopback(_host_of(request.headers.get("host", "")))

    def session(self, request: Request) -> Session:
        """This request's session (a new one when it has none)."""
        found = self._cookie_session(request)
        if self._bearer(request):
            return Session(found.id if found else "bearer", True, bearer=True)
        if found is not None:
            return found
        return Session(secrets.token_urlsafe(18), False, new=True)

    def authorized(self, session: Session) -> bool:
        return self.token is None or session.signed_in

    def csrf_token(self, session: Session) -> str:
        """The CSRF token of ``session``, for its forms and scripts."""
        return self._mac("csrf", session.id)

    def csrf_ok(self, session: Session, presented: str | None) -> bool:
        """Whether ``presented`` is this session's CSRF token (constant time)."""
        if session.bearer:
            return True
        if session.new or not presented:
            return False
        return hmac.compare_digest(presented.encode(), self.csrf_token(session).encode())

    def same_origin(self, request: Request) -> bool:
        """False when the request says it comes from another site (``Origin``)."""
        origin = request.headers.get("origin")
        if origin is None:
            return True
        return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()

    def set_cookie(self, response: Response, session: Session, *, signed_in: bool) -> None:
        flag = "1" if signed_in else "0"
        value = f"{session.id}.{flag}.{self._mac('session', f'{session.id}.{flag}')}"
        response.set_cookie(COOKIE, value, httponly=True, samesite="strict", path="/")

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")

    def new_session(self) -> Session:
        return Session(secrets.token_urlsafe(18), False, new=True)
