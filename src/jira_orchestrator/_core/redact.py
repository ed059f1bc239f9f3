"""Secrets kept out of what people read: URLs shown with their password as ``***``.

A bus URL such as ``nats://user:password@host:4222`` carries a credential; every log line,
error message, ``repr`` and CLI output shows it through `redact_url`, which keeps what
helps (scheme, user, hosts, port, options) and hides the password. A URL list
(``nats://a:p@h1,nats://a:p@h2``) is redacted entry by entry.
"""

from __future__ import annotations

import re

__all__ = ["redact_url"]

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/,?#]*):[^/,?#]*@")
_TOKEN = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<token>[^:@/,?#]+)@")
_SECRET_QUERY = re.compile(r"(?i)([?&](?:password|pass|token|secret|nkey|creds?)=)[^&#,]*")


def redact_url(url: str) -> str:
    """``url`` with any password, token-as-user or secret query value replaced by ``***``."""
    shown = _USERINFO.sub(lambda found: f"{found['scheme']}{found['user']}:***@", url)
    shown = _TOKEN.sub(lambda found: f"{found['scheme']}***@", shown)
    return _SECRET_QUERY.sub(lambda found: f"{found.group(1)}***", shown)
