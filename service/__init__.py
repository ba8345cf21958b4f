"""The realtime token broker."""

__version__ = "0.1.0"
