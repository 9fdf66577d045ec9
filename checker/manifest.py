"""A corpus manifest: the model, semantics and expected verdict of each history.

Owns reading ``manifest.json`` (docs/checker.md "Manifest"): a JSON object
whose ``"files"`` is a list of entries ``{"file": path relative to the
manifest's folder, "model", "initial_value", "semantics": {"fail_cas",
"nil_read"}, "expected_linearizable"}``; only ``file`` is required. Other
keys (counts, sources, notes) are ignored.

Invariants: a manifest is only ever read because it was named (``harness
check --manifest FILE``); nothing looks for one. Every problem is a
``ManifestError`` whose text is one line, ``PATH: what is wrong``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checker.model import FAIL_CAS, NIL_READ
from checker.models import MODELS

_SEMANTICS = {"fail_cas": FAIL_CAS, "nil_read": NIL_READ}


class ManifestError(Exception):
    """A manifest that cannot be used; str() is ``PATH: what is wrong``."""


@dataclass(frozen=True, slots=True)
class Entry:
    """How one history is checked, and what verdict it should get."""

    file: str  # relative to the manifest's folder, with "/"
    model: str | None
    semantics: dict[str, Any]  # check_file keywords: initial, fail_cas, nil_read
    expected: bool | None  # expected_linearizable, if given


@dataclass(frozen=True, slots=True)
class Manifest:
    path: Path
    entries: dict[str, Entry]  # by Entry.file

    def entry(self, history: Path) -> Entry | None:
        """The entry for a history file, or None if the manifest does not list it."""
        try:
            rel = history.resolve().relative_to(self.path.resolve().parent)
        except ValueError:
            return None  # not below the manifest's folder
        return self.entries.get(rel.as_posix())


def load_manifest(path: str | Path) -> Manifest:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise ManifestError(f"{p}: is a folder, not a manifest file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{p}: cannot read: {exc}") from None
    except ValueError as exc:
        raise ManifestError(f"{p}: not JSON ({str(exc).split(':')[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise ManifestError(f'{p}: expected a JSON object with a "files" list, '
                            f"not {type(data).__name__}")
    entries: dict[str, Entry] = {}
    for n, raw in enumerate(data["files"]):
        e = _entry(raw, f"{p}: files[{n}]")
        entries[e.file] = e
    return Manifest(p, entries)


def _entry(raw: Any, where: str) -> Entry:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: expected an object, not {type(raw).__name__}")
    file = raw.get("file")
    if not isinstance(file, str) or not file:
        raise ManifestError(f"{where}: 'file' must be a path relative to the manifest")
    model = raw.get("model")
    if model is not None and (not isinstance(model, str) or model not in MODELS):
        raise ManifestError(f"{where}: 'model' must be one of {', '.join(MODELS)}, not {model!r}")
    sem = raw.get("semantics") or {}
    if not isinstance(sem, dict):
        raise ManifestError(f"{where}: 'semantics' must be an object")
    semantics: dict[str, Any] = {}
    for k, v in sem.items():
        allowed = _SEMANTICS.get(k)
        if allowed is None:
            raise ManifestError(f"{where}: unknown semantics {k!r} (one of "
                                f"{', '.join(_SEMANTICS)})")
        if not isinstance(v, str) or v not in allowed:
            raise ManifestError(f"{where}: semantics {k} must be one of "
                                f"{', '.join(allowed)}, not {v!r}")
        semantics[k] = v
    if "initial_value" in raw:
        semantics["initial"] = raw["initial_value"]
    expected = raw.get("expected_linearizable")
    if expected is not None and not isinstance(expected, bool):
        raise ManifestError(f"{where}: 'expected_linearizable' must be true or false")
    return Entry(Path(file).as_posix(), model, semantics, expected)
