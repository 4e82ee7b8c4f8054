"""Our packages quiet the Google client libraries' notices about versions
the lock file pins (e.g. google.api_core's "You are using a non-supported
Python version"), in this process and in the ones it starts (Beam's
workers), keep the user's own PYTHONWARNINGS, and leave every other warning
alone. (The Makefile ignores every FutureWarning for its targets; this is
for `recsys` and `python -m` run by hand.)"""
import os
import subprocess
import sys

import pytest

import trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARN_ALL = ("import warnings\n"
            "for n in {notices!r}:\n"
            "  warnings.warn(n + ' (test)', FutureWarning)\n"
            "warnings.warn('another notice', FutureWarning)\n").format(
                notices=trainer._PINNED_VERSION_NOTICES)
# A process that imports trainer, then starts one that warns.
STARTS_ONE = ("import subprocess, sys, trainer\n"
              f"subprocess.run([sys.executable, '-c', {WARN_ALL!r}], "
              "check=True)\n")


def _warnings_shown(code, users_setting=None):
  env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
  if users_setting:
    env["PYTHONWARNINGS"] = users_setting
  out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO,
                       capture_output=True, text=True, check=True)
  return [line for line in out.stderr.splitlines() if "Warning:" in line]


def test_without_us_every_notice_shows():
  assert len(_warnings_shown(WARN_ALL)) == 4


@pytest.mark.parametrize("package", ["trainer", "pipeline", "serving",
                                     "bench"])
def test_importing_any_of_our_packages_quiets_only_the_notices(package):
  # Each is what a command run by hand imports first (`recsys`, a script
  # importing serving, `python -m bench...`).
  shown = _warnings_shown(f"import {package}\n" + WARN_ALL)
  assert len(shown) == 1 and "another notice" in shown[0], shown


def test_started_processes_inherit_the_quieting():
  shown = _warnings_shown(STARTS_ONE)
  assert len(shown) == 1 and "another notice" in shown[0], shown


def test_the_users_own_setting_is_kept():
  assert _warnings_shown(STARTS_ONE, "ignore:another notice") == []
  shown = _warnings_shown(STARTS_ONE, "error::UserWarning")
  assert len(shown) == 1 and "another notice" in shown[0], shown
