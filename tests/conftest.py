"""Shared pytest fixtures."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from ast_distill.testing.fake_ollama import FakeOllama


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    """A started fake Ollama/OpenAI server on 127.0.0.1 (free port) that answers with instances of the
    requested schema; set ``.responder``, ``.add_faults(...)``, ``.delay_s`` in the test."""
    fake = FakeOllama()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
