"""Hypothesis profiles for the test suite.

Profiles: ``ci`` (derandomized, no example database, modest example counts),
``dev`` (hypothesis' defaults, no deadline) and ``thorough`` (2000 examples).
``KLSPEC_HYPOTHESIS_PROFILE`` picks one; otherwise ``ci`` when the ``CI``
environment variable is set, else ``dev``. Hypothesis' own
``--hypothesis-profile`` option still wins: its plugin loads the profile after
this file has registered them.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_QUIET_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=30,
    print_blob=True,
    suppress_health_check=_QUIET_HEALTH,
)
settings.register_profile("dev", deadline=None, suppress_health_check=_QUIET_HEALTH)
settings.register_profile(
    "thorough", deadline=None, max_examples=2000, suppress_health_check=_QUIET_HEALTH
)
settings.load_profile(
    os.environ.get("KLSPEC_HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
)
