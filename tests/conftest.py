"""Fixtures shared by the whole suite. Helpers owned by one area live next to its tests."""

from __future__ import annotations
