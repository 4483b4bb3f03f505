"""Runs tests/typing_usage.py (the typed user script that mypy checks in ``make test``), so that the types it
asserts statically are also the ones the code returns."""
import typing_usage


def test_the_typed_user_script_runs():
    typing_usage.main()
