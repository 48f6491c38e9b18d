"""Errors the state machines retry (TransientError) versus everything else (caught: abandon / fail)."""

from __future__ import annotations


class TransientError(RuntimeError):
    """Worth retrying with backoff (Step Functions `Retry` on this error name): e.g. Scalelite down."""
