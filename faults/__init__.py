"""Fault injection: process faults (kill, pause), the network proxy, the nemesis schedule."""
