"""A tiny SavedModel with the recommender's signature contract, for fast
protocol tests (the real model is served in test_pipeline.py)."""
import os

import tensorflow as tf

from trainer import contract

CATALOG = [str(i) for i in range(1, 21)]


class TinyRecommender(tf.Module):
  """Scores item i for a user as cos(i * len(user_id)); `marker` tells
  versions apart."""

  def __init__(self, marker: float):
    super().__init__()
    self.marker = tf.Variable(marker)
    self.ids = tf.constant(CATALOG)

  def _top(self, seed, k, seen=None):
    scores = tf.cos(tf.range(1, 21, dtype=tf.float32)[tf.newaxis, :] *
                    seed[:, tf.newaxis]) + self.marker
    if seen is not None:  # [B, H] ids, left out
      watched = tf.reduce_any(tf.equal(self.ids[tf.newaxis, :, tf.newaxis],
                                       seen[:, tf.newaxis, :]), axis=-1)
      scores = tf.where(watched, -1e9, scores)
    values, idx = tf.math.top_k(scores, k=tf.clip_by_value(k, 1, 20))
    ids = tf.gather(self.ids, idx)
    return {"item_ids": ids, "titles": tf.strings.join(["Movie ", ids]),
            "scores": values}

  @tf.function(input_signature=[*contract.USER_INPUTS.values(),
                                tf.TensorSpec([], tf.int32, "k")])
  def recommend(self, user_id, age, gender, occupation, history_item_ids, k):
    seed = tf.cast(tf.strings.length(user_id), tf.float32) + 1.0
    return self._top(seed, k)

  @tf.function(input_signature=[*contract.USER_INPUTS.values(),
                                tf.TensorSpec([], tf.int32, "k")])
  def recommend_unseen(self, user_id, age, gender, occupation,
                       history_item_ids, k):
    seed = tf.cast(tf.strings.length(user_id), tf.float32) + 1.0
    return self._top(seed, k, history_item_ids)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, "query"),
                                tf.TensorSpec([], tf.int32, "k")])
  def search(self, query, k):
    return self._top(tf.cast(tf.strings.length(query), tf.float32) + 1.0, k)


def save_version(base_path: str, version: int, marker: float) -> str:
  """Saves a version and renames it into place, as AtomicPusher publishes:
  a polling server never sees it half written."""
  path = f"{base_path}/{version}"
  staging = f"{base_path}/.tmp-{version}"
  module = TinyRecommender(marker)
  tf.saved_model.save(module, staging, signatures={
      contract.RECOMMEND: module.recommend,
      contract.RECOMMEND_UNSEEN: module.recommend_unseen,
      contract.SERVING_DEFAULT: module.recommend_unseen,
      contract.SEARCH: module.search})
  os.rename(staging, path)
  return path
