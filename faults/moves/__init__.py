"""Scripted moves for known bugs, run inside a demonstration mix (faults/mixes.py).

Each is a coroutine ``move(nemesis, stop, hold)`` that reads node ``status``
and drives the recorded fault primitives of faults.interpret.FaultActions,
staying inside its window: ``revote`` / ``repromise`` (revote.py) and
``figure-8`` (figure8.py). docs/faults.md "Demonstrations".
"""
