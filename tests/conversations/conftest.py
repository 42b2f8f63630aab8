"""The vendor sandbox fixtures, shared with the conversations' tests."""

from tests.sandbox.conftest import clock, sandbox_app, sandbox_settings

__all__ = ["clock", "sandbox_app", "sandbox_settings"]
