"""The linearizability checker, on its own (docs/checker.md).

Imports nothing from the harness, the faults, the reports or the nodes: a
history file and a model are all it needs.
"""
