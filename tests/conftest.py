"""Shared by every test: tiny tensors on a shared, busy 2-core machine run fastest on one thread."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Pin torch to one thread for each test (a second OpenMP thread only adds contention), then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
