"""Fuzzing with hypothesis: a few hundred inputs per target in ``make test``,
``FUZZ_EXAMPLES`` of them (10**6 in ``make fuzz``) when asked.

Every target feeds hostile input to code that reads the network or a file
and asserts what must hold for any input: only the documented error comes
out, nothing hangs, nothing grows without bound, stored data is unchanged.
A failure prints the shrunk input; it becomes a regression test with
``@example``.
"""

import datetime
import os

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
LONG_RUN = "FUZZ_EXAMPLES" in os.environ

settings.register_profile(
    "fuzz",
    max_examples=EXAMPLES,
    # A loaded 2-core machine makes single inputs slow now and then, so in
    # make test a hang is left to pytest-timeout; a long run (no pytest
    # timeout) fails an input that takes more than 5 s.
    deadline=datetime.timedelta(seconds=5) if LONG_RUN else None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # make test must not depend on what an earlier run found and stored.
    database=settings().database if LONG_RUN else None,
    print_blob=True,
)
settings.load_profile("fuzz")
