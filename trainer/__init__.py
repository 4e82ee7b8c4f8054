"""The recommender model: features, Transform, towers, training and export.

TensorFlow Recommenders needs Keras 2, and TensorFlow picks its Keras the first
time `tf.keras` is touched, so the switch is set before anything imports TF.
"""
import os
import sys

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
