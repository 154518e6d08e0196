"""Helpers shared by more than one test folder (imported as tests.support.NAME)."""
