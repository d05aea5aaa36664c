"""Reliability and security: load, faults and hostile input (issue 8)."""
