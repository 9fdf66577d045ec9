"""Consensus nodes under test: Raft and Multi-Paxos key-value stores (see DESIGN.md, "Nodes")."""
