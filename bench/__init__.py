"""Benchmarks: scripts that print a table and write JSON (and plots) to
bench/results/.

`python -m bench.<name>` runs this first, before a script's own imports
reach TensorFlow: importing trainer sets the Keras 2 switch TFRS needs and
quiets the notices about versions the lock file pins. (The scripts set the
switch themselves too, for `python bench/<name>.py`.)
"""
import trainer  # noqa: F401
