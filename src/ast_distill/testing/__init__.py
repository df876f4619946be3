"""Test and benchmark helpers that ship with the package (no network: everything binds 127.0.0.1)."""
