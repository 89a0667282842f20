"""Fixtures shared by cross-context tests."""
