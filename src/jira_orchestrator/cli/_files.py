"""Writing the CLI's output files: whole or not at all, with errors that say what failed."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

import typer

from jira_orchestrator.cli._errors import EXIT_FAILURE, EXIT_USAGE, fail

__all__ = ["exit_for", "os_error_code", "write_text"]

_BAD_PATH = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.EEXIST, errno.EINVAL}
)


def os_error_code(error: OSError) -> int:
    """2 for a path that cannot be right (missing folder, a file where a folder is wanted,
    a name too long); 1 for what the system refused (permissions, disk full, I/O)."""
    return EXIT_USAGE if error.errno in _BAD_PATH else EXIT_FAILURE


def _describe(error: OSError) -> str:
    return error.strerror or str(error)


def write_text(path: Path, text: str, *, private: bool = False) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed into place, so the file
    is never half-written; ``private`` creates it readable by its owner only (0600) from
    the start. Exits 2 or 1 (`os_error_code`) with a one-line error naming ``path``."""
    if path.is_dir():
        raise fail(f"cannot write {path}: it is a folder", EXIT_USAGE)
    temporary: str | None = None
    try:
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{path.name[:64]}.", suffix=".partial", dir=path.parent
        )
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        if not private:  # mkstemp made it 0600; a plain file follows the umask
            umask = os.umask(0o022)
            os.umask(umask)
            os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
        temporary = None
    except OSError as error:
        raise fail(f"cannot write {path}: {_describe(error)}", os_error_code(error)) from None
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def exit_for(error: OSError, doing: str) -> typer.Exit:
    """The exit for an ``OSError`` met while ``doing`` something (printed as one line)."""
    return fail(f"{doing}: {_describe(error)}", os_error_code(error))
