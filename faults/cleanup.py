"""What runs that died may leave on the machine, and the one way to clean it.

Owns ``CLEANERS``: one ``Cleaner`` per kind of machine-wide leftover a run
can make: network namespaces (faults/netns.py), the lazy file systems of
disk faults (faults/disk_mounts.py) and the libfaketime timestamp folders of
clock faults (faults/clock.py). Every set-up of such a thing cleans its
own kind first; ``harness clean`` runs them all on demand (docs/faults.md).

Invariants:
- A cleaner removes only what an owner record (faults.owner) names and whose
  owner is provably gone; what looks like ours but has no record is only
  reported (``unowned``), never removed.
- ``clean()`` runs every cleaner even when one fails, and says what each
  removed, one line per thing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from faults import clock, disk_mounts, netns
from faults.owner import CleanupError


@dataclass(frozen=True, slots=True)
class Cleaner:
    """One kind of leftover: how to remove dead runs' and how to find unowned ones."""

    kind: str
    #: Removes what dead runs left; one line per thing removed. Raises
    #: CleanupError when there is something to remove but it may not be.
    remove_stale: Callable[[], list[str]]
    #: Things that look like this kind but have no owner record, one line each.
    unowned: Callable[[], list[str]]


CLEANERS: tuple[Cleaner, ...] = (
    Cleaner("netns", netns.cleanup_stale, netns.unowned),
    Cleaner("lazyfs", disk_mounts.cleanup_stale, disk_mounts.unowned),
    Cleaner("faketime", clock.cleanup_stale, clock.unowned),
)


@dataclass(slots=True)
class Cleaned:
    """What one ``clean()`` did."""

    removed: list[str] = field(default_factory=list)
    #: Each leftover without an owner record, left alone.
    unowned: list[str] = field(default_factory=list)
    #: One-line reasons a cleaner could not do its part.
    errors: list[str] = field(default_factory=list)


def clean(cleaners: Sequence[Cleaner] | None = None) -> Cleaned:
    """Remove what dead runs left, with every cleaner (default: ``CLEANERS``);
    report the rest."""
    done = Cleaned()
    for c in CLEANERS if cleaners is None else cleaners:
        try:
            done.removed += c.remove_stale()
            done.unowned += c.unowned()
        except (CleanupError, netns.NetnsError, OSError) as exc:  # one line each, never a traceback
            done.errors.append(f"{c.kind}: {exc}")
    return done
