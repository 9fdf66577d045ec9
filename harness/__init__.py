"""The harness: runs clusters under faults, records histories, checks them, reports."""
