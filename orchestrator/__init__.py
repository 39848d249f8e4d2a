"""SLA-based backup & recovery orchestrator: the core (domain model and use cases)."""

__version__ = "0.1.0"
