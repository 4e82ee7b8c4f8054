"""One worker of the multi-worker training test (run as a subprocess).

Usage: multiworker_worker.py OUT.npz   (TF_CONFIG names the cluster and task)
Trains the real RecommenderModel under MultiWorkerMirroredStrategy on a small
synthetic batch stream and saves its final weights.
"""
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from trainer import features  # noqa: E402
from trainer import preprocessing  # noqa: E402
from trainer.config import TrainerConfig  # noqa: E402
from trainer.distribution import make_strategy  # noqa: E402
from trainer.model import RecommenderModel  # noqa: E402

_xf = features.transformed_name
USERS, ITEMS, OCCUPATIONS = 30, 40, 5


def batches(n: int, batch: int) -> tf.data.Dataset:
  rng = np.random.default_rng(7)  # Same data on every worker.
  history = rng.integers(-1, ITEMS, size=(n, features.MAX_HISTORY))
  data = {
      _xf(features.USER_ID): rng.integers(0, USERS, n),
      _xf(features.ITEM_ID): rng.integers(0, ITEMS, n),
      _xf(features.GENDER): rng.integers(0, 2, n),
      _xf(features.OCCUPATION): rng.integers(0, OCCUPATIONS, n),
      _xf(features.AGE): rng.normal(size=n).astype(np.float32),
      _xf(features.YEAR): rng.normal(size=n).astype(np.float32),
      _xf(features.GENRES): (rng.random((n, len(features.GENRE_VOCAB))) < 0.2
                             ).astype(np.float32),
      _xf(features.HISTORY): np.sort(history, axis=1),
      features.LABEL_KEY: rng.integers(1, 6, n).astype(np.float32),
  }
  return tf.data.Dataset.from_tensor_slices(data).batch(batch).repeat()


def main(out_path: str) -> None:
  config = TrainerConfig(embedding_dim=8, hidden_units=16, use_text=False,
                         item_id_dropout=0.0,
                         distribution="multi_worker_mirrored")
  strategy = make_strategy(config.distribution)
  with strategy.scope():
    model = RecommenderModel(
        config, USERS, OCCUPATIONS,
        item_probability=np.full(ITEMS + preprocessing.OOV_BUCKETS,
                                 1.0 / (ITEMS + 1), np.float32))
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
  tf.keras.utils.set_random_seed(1)
  model.fit(batches(512, 64), steps_per_epoch=8, epochs=1, verbose=0)
  np.savez(out_path, *[w.numpy() for w in model.weights])
  print("replicas", strategy.num_replicas_in_sync)


if __name__ == "__main__":
  main(sys.argv[1])
