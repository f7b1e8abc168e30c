"""Shared by the tests/test_arlon_*.py files."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convs and transformers run fastest on one thread, and the shared 2-core machine is busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
