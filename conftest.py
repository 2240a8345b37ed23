"""Project-wide set-up for this repository's own test runs.

Nothing here is needed by users of the plugin: the hub is never reachable in these tests,
so Hugging Face libraries are told so up front instead of retrying the network. (pytester
is enabled with ``-p pytester`` in pyproject.toml rather than ``pytest_plugins`` here, so
running a bundled suite from another folder does not trip over this file.)
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
