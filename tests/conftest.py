import os
import time

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
#: when this test session began: the browser check reuses smoke outputs written after it (tests/test_browser.py)
os.environ["LSS_TEST_SESSION_START"] = repr(time.time())


def pytest_collection_modifyitems(session, config, items):
    """The browser check runs last, after nbval has run notebooks 02-05, whose smoke outputs it reuses."""
    browser = [i for i in items if i.nodeid.startswith("tests/test_browser.py")]
    if browser and len(browser) < len(items):
        items[:] = [i for i in items if i not in browser] + browser


@pytest.fixture(autouse=True)
def _one_torch_thread(request):
    """Unit tests train tiny networks: one thread is fastest and keeps timings stable on 2 cores. Tests
    marked ``all_threads`` (the cWGAN's trainings: 1.6x faster on two free cores, same weights) keep torch's own."""
    if request.node.get_closest_marker("all_threads"):
        yield
        return
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)
