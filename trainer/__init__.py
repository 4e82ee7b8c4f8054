"""The recommender model: features, Transform, towers, training and export.

TensorFlow Recommenders needs Keras 2, and TensorFlow picks its Keras the first
time `tf.keras` is touched, so the switch is set before anything imports TF.
"""
import os
import sys
import warnings

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def _quiet_tf_shutdown(unraisable):
  """TF 2.16 functions raise TypeError from __del__ at interpreter exit (Beam
  worker processes print dozens); that noise is dropped, nothing else."""
  if (isinstance(unraisable.exc_value, TypeError) and
      getattr(unraisable.object, "__qualname__", "") ==
      "AtomicFunction.__del__"):
    return
  sys.__unraisablehook__(unraisable)


sys.unraisablehook = _quiet_tf_shutdown


# Google client libraries pulled in by TFX and Beam warn on import that
# Python 3.10, grpcio and google-cloud-storage will not be supported in later
# releases of theirs: versions the lock file pins, about nothing a user can
# act on, a dozen per command (one more per Beam worker process). Ignored
# here and, through PYTHONWARNINGS (a literal message prefix each; the
# user's own setting is kept), in the processes this one starts. The
# Makefile's targets already ignore every FutureWarning; this is for
# `recsys` and `python -m bench...` run by hand.
_PINNED_VERSION_NOTICES = (
    "You are using a non-supported Python version",
    "grpcio < 1.83.0 does not support Post-Quantum Cryptography",
    "Support for google-cloud-storage < 3.0.0 will be removed",
)
for _notice in _PINNED_VERSION_NOTICES:
  warnings.filterwarnings("ignore", message=_notice, category=FutureWarning)
_users_setting = os.environ.get("PYTHONWARNINGS", "")
os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [_users_setting] + [
    f"ignore:{notice}:FutureWarning" for notice in _PINNED_VERSION_NOTICES
    if notice not in _users_setting]))
