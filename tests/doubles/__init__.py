"""Doubles for services that cannot run on the test machine."""
