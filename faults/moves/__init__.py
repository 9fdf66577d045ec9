"""Scripted moves for known bugs, run inside a demonstration mix (faults/mixes.py).

Each is a generator ``move(player, hold)`` of reactive-plan steps
(faults.plan.Player, through the faults.mixes.MixPlayer helpers): it reads
node status from the interpreter's views and emits its faults as
operations, staying inside its window: ``revote`` / ``repromise``
(revote.py) and ``figure-8`` (figure8.py). docs/faults.md "Demonstrations".
"""
