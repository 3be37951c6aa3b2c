"""The simulated cases (sim_cases/) need NUMBA_ENABLE_CUDASIM=1 before numba is imported,
so the main run leaves them to test_cuda_sim.py, which runs them in a process of their own.
A run that has the simulator on already (NUMBA_ENABLE_CUDASIM=1 python -m pytest ...)
collects them in place.

A run that includes test_cuda_sim.py starts that suite as soon as it is collected (it runs
in processes of its own for ~100 s, beside the rest of the run), runs test_cuda_sim.py's
tests last, by when it is done, and ends it if the session ends before they waited for
it."""

import os

SIMULATING = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
collect_ignore = [] if SIMULATING else ["sim_cases"]

SIM_TESTS = "tests/cuda/test_cuda_sim.py::"
_early_modules: list = []


def pytest_collection_modifyitems(session, config, items):
    if not SIMULATING:
        items[:] = sorted(items, key=lambda item: item.nodeid.startswith(SIM_TESTS))


def pytest_collection_finish(session):
    if SIMULATING or session.config.option.collectonly:
        return
    for item in session.items:
        if item.nodeid.startswith(SIM_TESTS):
            item.module.start_early()
            _early_modules.append(item.module)
            return


def pytest_sessionfinish(session):
    for module in _early_modules:
        module.stop_early()
