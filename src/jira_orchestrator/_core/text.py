"""Text from outside (the wire, manifests, Jira) made safe to print or log."""

from __future__ import annotations

import re

__all__ = ["escape_control"]

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def escape_control(text: object) -> str:
    """``text`` (any object, as ``str``) with every control character (C0, C1,
    bidirectional and zero-width marks) written as an escape such as ``\\x1b``, so a
    terminal or a log shows it instead of obeying it (and one line stays one line)."""
    return _CONTROL.sub(
        lambda found: (
            f"\\x{ord(found.group()):02x}"
            if ord(found.group()) < 0x100
            else f"\\u{ord(found.group()):04x}"
        ),
        text if isinstance(text, str) else str(text),
    )
