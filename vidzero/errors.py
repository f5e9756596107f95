"""Errors the user can fix. The CLI prints them as one line and exits with status 2."""

from __future__ import annotations


class BadInput(ValueError):
    """Input the user can correct: a missing file, an impossible layout, an absurd setting."""
