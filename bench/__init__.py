"""Benchmarks: scripts that print a table and write JSON (and plots) to
bench/results/.

`python -m bench.<name>` runs this first, before a script's own imports
reach TensorFlow: the Keras 2 switch TFRS needs, and `trainer`'s quieting
of the notices about versions the lock file pins.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import trainer  # noqa: E402,F401
