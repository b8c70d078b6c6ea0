"""Shared test configuration.

- pytester drives the pytest plugin's own tests.
- Hypothesis profiles: property tests never fail for being slow on a loaded machine
  (no per-example deadline), and under CI (``CI`` set) they are derandomized, so a CI
  run is reproducible; locally every run explores new examples. Pick one explicitly
  with ``--hypothesis-profile``.
"""

import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester"]

settings.register_profile("dev", deadline=None)
settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
