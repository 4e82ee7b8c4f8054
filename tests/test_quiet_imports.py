"""Our packages quiet the Google client libraries' notices about versions
the lock file pins (e.g. google.api_core's "You are using a non-supported
Python version"), in this process and in the ones it starts (Beam's
workers), and leave every other warning alone."""
import os
import subprocess
import sys

import trainer  # sets PYTHONWARNINGS for the processes started below

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARN_ALL = ("import warnings\n"
            "for n in {notices!r}:\n"
            "  warnings.warn(n + ' (test)', FutureWarning)\n"
            "warnings.warn('another notice', FutureWarning)\n").format(
                notices=trainer._PINNED_VERSION_NOTICES)
BARE = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}


def _warnings_shown(code, env):
  out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO,
                       capture_output=True, text=True, check=True)
  return [line for line in out.stderr.splitlines() if "Warning:" in line]


def test_without_us_every_notice_shows():
  assert len(_warnings_shown(WARN_ALL, BARE)) == 4


def test_importing_trainer_quiets_only_the_notices():
  shown = _warnings_shown("import trainer\n" + WARN_ALL, BARE)
  assert len(shown) == 1 and "another notice" in shown[0], shown


def test_started_processes_inherit_the_quieting():
  shown = _warnings_shown(WARN_ALL, dict(os.environ))
  assert len(shown) == 1 and "another notice" in shown[0], shown
