"""Backup provider drivers behind one interface with declared capabilities."""
