"""Distribution strategies, chosen by name in the Trainer's config.

  default                one device (CPU or the first GPU)
  mirrored               all local GPUs, synchronous
  multi_worker_mirrored  several machines, synchronous all-reduce; each worker
                         reads TF_CONFIG (cluster and its own task), as set by
                         Kubeflow's TFJob or Vertex AI training
"""
import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")


def make_strategy(name: str) -> tf.distribute.Strategy:
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker_mirrored":
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise ValueError(f"Unknown distribution strategy {name!r}; choose one of "
                   f"{', '.join(STRATEGIES)}")


def is_chief() -> bool:
  """True unless TF_CONFIG names this process a non-chief worker: only the
  chief writes the exported model."""
  config = json.loads(os.environ.get("TF_CONFIG") or "{}")
  task = config.get("task") or {}
  if task.get("type") in (None, "chief"):
    return True
  return (task.get("type") == "worker" and int(task.get("index", 0)) == 0
          and "chief" not in config.get("cluster", {}))
