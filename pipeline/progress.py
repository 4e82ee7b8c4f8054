"""Keeps the console readable: progress lines in, framework dumps out.

TFX logs every component's full IR proto at INFO, and Beam relays each
worker's warnings; a person running the demo wants to see which component
runs, how much data moved, and training progress. Everything still goes to the
log file under the output folder for debugging.
"""
import logging
import os
import re

_KEEP = re.compile(r"Component \w+ is (running|finished)|"
                   r"MovieLensExampleGen:|train step|trained \d+ steps|"
                   r"text tower|"
                   r"eval on|Model pushed|not blessed|Running movielens|"
                   r"extracted to|Downloading |warm start|replay:|"
                   r"catalog refresh:|tuning on \d+|^trial \d+ ")
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ProgressFilter(logging.Filter):

  def filter(self, record: logging.LogRecord) -> bool:
    if record.exc_info and _is_stop(record.exc_info[1]):
      return False  # The CLI prints its own short report (pipeline/stops).
    if record.levelno >= logging.ERROR:
      return True
    ours = (record.pathname.startswith(_REPO) and
            "site-packages" not in record.pathname)
    if ours and record.levelno >= logging.WARNING:
      return True
    return bool(_KEEP.search(record.getMessage().split("\n", 1)[0]))


def _is_stop(error) -> bool:
  from pipeline import stops
  return error is not None and stops.find_stop(error) is not None


def configure(output_dir: str) -> str:
  """Console shows progress only; `<output_dir>/run.log` gets everything."""
  from absl import logging as absl_logging
  absl_logging.set_verbosity(absl_logging.INFO)
  root = logging.getLogger()
  os.makedirs(output_dir, exist_ok=True)
  path = os.path.join(output_dir, "run.log")
  full = logging.FileHandler(path)
  full.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
  root.addHandler(full)
  tf_handlers = logging.getLogger("tensorflow").handlers
  for handler in root.handlers + logging.getLogger("absl").handlers + \
      tf_handlers:
    if handler is not full:
      handler.addFilter(ProgressFilter())
  return path
