"""A cache of built router indexes on disk, so a short-lived process (one
``jira-orchestrator route``) does not profile and index every plugin again.

An entry is keyed by everything the index is built from: the plugins' manifests and
components as discovered, the bytes of every component file (its body is read), the
field and scoring weights, and the routing code itself. Change any of them and the key
changes; nothing is ever served stale. Entries are MessagePack (`ProfileIndex.dumps`):
reading one runs no code. A damaged entry is rebuilt; a directory that cannot be written
only costs the speed-up. Both are logged as warnings.

    router = Router.from_directory("plugins", cache="~/.cache/jira-orchestrator")
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import struct
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from jira_orchestrator import __version__
from jira_orchestrator.plugins import PluginInfo
from jira_orchestrator.routing.index import ProfileIndex
from jira_orchestrator.routing.profiles import FieldWeights
from jira_orchestrator.routing.scoring import ScoringWeights

__all__ = ["CACHE_ENV", "IndexCache", "default_cache_dir"]

CACHE_ENV = "JIRA_ORCHESTRATOR_CACHE"
_SUFFIX = ".index"
_KEEP = 8
"""Entries kept per directory (the newest): one per plugin folder and settings in use."""

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$JIRA_ORCHESTRATOR_CACHE``, else ``$XDG_CACHE_HOME/jira-orchestrator``, else
    ``~/.cache/jira-orchestrator``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jira-orchestrator"


@cache
def _code_digest() -> bytes:
    """The package version and the routing package's source: a change to how plugins are
    read changes the key, released or not."""
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.digest()


class IndexCache:
    """Built indexes (with each plugin's specificity) in one directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).expanduser()

    def key(
        self, plugins: Sequence[PluginInfo], fields: FieldWeights, weights: ScoringWeights
    ) -> str:
        """The entry's name for these plugins and settings."""
        digest = hashlib.sha256(_code_digest())
        digest.update(repr((fields, weights)).encode())
        for plugin in sorted(plugins, key=lambda p: p.name):
            digest.update(plugin.manifest.model_dump_json().encode())
            for component in (*plugin.agents, *plugin.commands, *plugin.skills):
                digest.update(component.model_dump_json().encode())
                try:
                    digest.update((plugin.root / component.path).read_bytes())
                except OSError:
                    digest.update(b"\0unreadable")
        return digest.hexdigest()[:32]

    def read(self, name: str) -> bytes | None:
        """The bytes of entry ``name``, or None when there is none or it cannot be read."""
        path = self.directory / name
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("routing cache %s: cannot read: %s", path, exc)
            return None

    def write(self, name: str, data: bytes) -> None:
        """Write entry ``name`` atomically, then drop the oldest of its kind (suffix)
        beyond a few. A directory that cannot be written is logged, not raised."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(data)
                os.replace(temporary, self.directory / name)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.warning("routing cache %s: cannot write: %s", self.directory, exc)
            return
        self._prune("*" + Path(name).suffix)

    def load(self, key: str) -> tuple[ProfileIndex, tuple[float, ...]] | None:
        """The index and specificity saved as ``key``, or None (none, or damaged)."""
        data = self.read(key + _SUFFIX)
        if data is None:
            return None
        # Reading creates a few hundred thousand tuples at once: without the cyclic garbage
        # collector running over them a few times meanwhile, it takes a third less time.
        collecting = gc.isenabled()
        gc.disable()
        try:
            (count,) = struct.unpack_from("<I", data)
            specificity = struct.unpack_from(f"<{count}d", data, 4)
            index = ProfileIndex.loads(data[4 + 8 * count :])
            if len(specificity) != len(index.profiles):
                raise ValueError("specificity and profiles differ in length")
        except (struct.error, ValueError) as exc:
            log.warning("routing cache %s: damaged, building again: %s", key + _SUFFIX, exc)
            return None
        finally:
            if collecting:
                gc.enable()
        return index, tuple(specificity)

    def save(self, key: str, index: ProfileIndex, specificity: Sequence[float]) -> None:
        """Save an index and its plugins' specificity as ``key``."""
        data = struct.pack(f"<I{len(specificity)}d", len(specificity), *specificity)
        self.write(key + _SUFFIX, data + index.dumps())

    def _prune(self, pattern: str) -> None:
        try:
            entries = sorted(
                self.directory.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True
            )
            for stale in entries[_KEEP:]:
                stale.unlink(missing_ok=True)
        except OSError:
            pass  # another process pruning at the same time
