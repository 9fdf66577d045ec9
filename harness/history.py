"""TEMPORARY: removed when every importer uses checker/.

The history readers, ``Op`` and the pairing moved to ``checker.history``
(docs/history.md). This re-export keeps the modules that still import
``harness.history`` working while they switch. ``pair_ops`` is the old name
of ``checker.history.pair``; ``Op``'s old attribute names (``status``,
``call_time``, ``ret_time``) are gone: they are ``type``, ``start``, ``end``.
"""

from checker.history import *  # the whole public API, re-exported
from checker.history import pair as pair_ops  # noqa: F401  (the old name)
