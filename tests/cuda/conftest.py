"""The simulated cases (sim_cases/) need NUMBA_ENABLE_CUDASIM=1 before numba is imported,
so the main run leaves them to test_cuda_sim.py, which runs them in a process of their own.
A run that has the simulator on already (NUMBA_ENABLE_CUDASIM=1 python -m pytest ...)
collects them in place."""

import os

SIMULATING = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
collect_ignore = [] if SIMULATING else ["sim_cases"]
