"""Suite-wide test settings.

Hypothesis runs derandomized by default so that CI is reproducible: the same examples every
run, and a failure seen once is seen again. Set ``HYPOTHESIS_PROFILE=explore`` to search with
fresh random examples (and more of them) while developing.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", max_examples=2_000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
