"""TF Serving side: model layout, client and local server.

TensorFlow Recommenders needs Keras 2, and TensorFlow picks its Keras the first
time `tf.keras` is touched, so the switch is set before anything imports TF.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import trainer  # noqa: E402,F401  (quiets pinned-version notices first)
