"""Fault-injection suite (issue 8): bad inputs, survived faults, untrusted files."""
