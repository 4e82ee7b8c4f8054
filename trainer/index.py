"""The catalogue index of an exported model: exact (BruteForce, stock TF
ops) or approximate (ScaNN), and the settings saved with the model so a
catalogue refresh rebuilds it alike.

ScaNN's knobs come from a table `make bench-serving` measured on one
model's vectors (scann_tuning.py); another model's vectors can cluster
differently, and the same share of leaves then finds less of the true top
k. So the export measures the twin it is about to save against exact
search on its own vectors, and searches more of the index until the
twin's recall reaches the bar (`checked_scann`).
"""
import dataclasses
import json
import logging
import os
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from trainer import scann_tuning

# The IndexSettings a model was exported with.
SETTINGS_PATH = os.path.join("assets.extra", "index_settings.json")
# ScaNN ops live in a namespace stock TF Serving does not know.
SCANN_SAVE_OPTIONS = tf.saved_model.SaveOptions(namespace_whitelist=["Scann"])
# Queries of the export's recall check: drawn like the catalogue's own
# vectors. On the demo's model, ScaNN found 0.986 of exact search's top 100
# for such queries and 0.984 for the 943 users' real query vectors.
RECALL_CHECK_QUERIES = 1000
RECALL_CHECK_KS = (10, 100)


def index_depth(max_k: int, num_items: int, exclude_margin: int) -> int:
  """How many items the index returns: max_k plus room to drop up to
  `exclude_margin` seen items (the history length examples carry) so that
  recommend_unseen still returns k."""
  return min(max_k + exclude_margin, num_items)


def make_index(kind: str, item_vectors: np.ndarray, item_ids: np.ndarray,
               max_k: int, exclude_margin: int, num_leaves: int = 40,
               leaves_to_search: int = 20, reordering: int = 500
               ) -> tfrs.layers.factorized_top_k.TopK:
  """The catalogue index: "brute_force" (exact, stock TF ops: any TF
  Serving) or "scann" (approximate, needs ScaNN's ops in the server).

  Args:
    kind: "brute_force" or "scann".
    item_vectors: [N, d] candidate vectors; item_ids: [N] their ids.
    max_k: largest k served.
    exclude_margin: see index_depth.
    num_leaves, leaves_to_search, reordering: ScaNN's partitioning and
      re-scoring knobs (ignored for brute force).
  """
  depth = index_depth(max_k, len(item_ids), exclude_margin)
  if kind == "brute_force":
    index = tfrs.layers.factorized_top_k.BruteForce(k=depth)
  elif kind == "scann":
    index = tfrs.layers.factorized_top_k.ScaNN(
        k=depth, num_leaves=min(num_leaves, len(item_ids)),
        num_leaves_to_search=min(leaves_to_search, num_leaves),
        num_reordering_candidates=max(reordering, depth))
  else:
    raise ValueError(f"Unknown index {kind!r}; use brute_force or scann")
  index.index(tf.constant(item_vectors), tf.constant(item_ids))
  return index


def item_like_vectors(vectors: np.ndarray, n: int,
                      rng: np.random.Generator) -> np.ndarray:
  """[n, d] Gaussian draws with the mean and covariance of `vectors`."""
  mean, cov = vectors.mean(0), np.cov(vectors, rowvar=False)
  return rng.multivariate_normal(mean, cov, size=n,
                                 check_valid="ignore").astype(np.float32)


def exact_top_k(queries: np.ndarray, vectors: np.ndarray, k: int,
                chunk: int = 100) -> np.ndarray:
  """[Q, k] row indices of `vectors` by descending dot product, in chunks of
  queries so a million-row catalogue's score matrix stays small."""
  out = []
  for start in range(0, len(queries), chunk):
    scores = queries[start:start + chunk] @ vectors.T
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, part, 1).argsort(1)[:, ::-1]
    out.append(np.take_along_axis(part, order, 1))
  return np.concatenate(out)


@dataclasses.dataclass
class IndexSettings:
  """How the Trainer built the index and the search scores; saved with the
  model (SETTINGS_PATH) so a catalogue refresh rebuilds them alike."""
  max_k: int
  exclude_margin: int
  text_match_weight: float = 0.0
  personalization_weight: float = 0.0
  # 1 (the strongest history item explains every item) for models saved
  # before the setting existed.
  explanation_min_share: float = 1.0
  # The ranking stage (RecommenderModule); 0 for models saved before it
  # existed: retrieval's order, as they served.
  rerank_weight: float = 0.0
  rerank_depth: int = 100
  # The item-item term (trainer/item_item.py); 0 for models saved before
  # it existed. Its depth is how many items the index returns at least.
  item_item_weight: float = 0.0
  item_item_decay: float = 1.0
  item_item_depth: int = 0
  # What a catalogue refresh gives items the matrix has not met
  # (TrainerConfig.item_item_new_items, item_item_neighbours).
  item_item_new_items: float = 0.0
  item_item_neighbours: int = 0
  scann_num_leaves: int = 40
  scann_leaves_to_search: int = 20
  scann_reordering: int = 500
  # The export's recall check (checked_scann): the bar, and what the saved
  # twin measured ({"recall@10": .., "recall@100": ..}; None: no twin).
  scann_min_recall: float = scann_tuning.MIN_RECALL
  scann_recall: Optional[dict] = None

  @property
  def index_k(self) -> int:
    """The k the index is built for: the largest k served, or the item-item
    term's depth if that is deeper."""
    return max(self.max_k, self.item_item_depth if self.item_item_weight
               else 0)

  def write(self, export_dir: str) -> None:
    path = os.path.join(export_dir, SETTINGS_PATH)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
      f.write(json.dumps(dataclasses.asdict(self), indent=1))

  @classmethod
  def read(cls, export_dir: str) -> "IndexSettings":
    """Fields this code does not know (a model exported by a newer
    release) are left out with a warning, so a catalogue refresh still
    rebuilds it; missing ones take their defaults (older models)."""
    with tf.io.gfile.GFile(os.path.join(export_dir, SETTINGS_PATH)) as f:
      values = json.loads(f.read())
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
      logging.warning("%s: index settings %s are newer than this code; "
                      "left out", export_dir, unknown)
    return cls(**{k: v for k, v in values.items() if k in known})


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int) -> float:
  """Mean share of each row's exact top k (truth [Q, >= k]) that the
  approximate top k (found [Q, >= k]) holds, order aside."""
  return float(np.mean([len(set(f[:k]) & set(t[:k])) / k
                        for f, t in zip(found, truth)]))


def scann_recall(scann: tfrs.layers.factorized_top_k.ScaNN,
                 queries: np.ndarray, truth_ids: np.ndarray) -> dict:
  """Share of exact search's top k (truth_ids [Q, >= 100]) that `scann`
  returns in its own top k, for k in RECALL_CHECK_KS (capped at its depth)."""
  found = scann(tf.constant(queries))[1].numpy()
  return {f"recall@{k}": round(recall_at_k(
      found, truth_ids, min(k, found.shape[1], truth_ids.shape[1])), 4)
          for k in RECALL_CHECK_KS}


def checked_scann(item_vectors: np.ndarray, item_ids: np.ndarray,
                  settings: IndexSettings
                  ) -> Tuple[tfrs.layers.factorized_top_k.ScaNN,
                             IndexSettings]:
  """The ScaNN index with `settings`' knobs, searching wider until it finds
  `settings.scann_min_recall` of exact search's top 10 and top 100 for
  RECALL_CHECK_QUERIES item-like queries; returns it and the settings it was
  built with, its measured recall included.

  Each widening doubles the leaves searched and the reordering depth; with
  every leaf searched and every item re-scored the search is exact, so the
  loop ends. A bar of 0 keeps the knobs as given (still measured).
  """
  n = len(item_ids)
  depth = index_depth(settings.index_k, n, settings.exclude_margin)
  rng = np.random.default_rng(0)
  queries = (item_like_vectors(item_vectors, RECALL_CHECK_QUERIES, rng)
             if n > 1 else item_vectors.astype(np.float32))
  truth = np.asarray(item_ids, object)[
      exact_top_k(queries, item_vectors, min(max(RECALL_CHECK_KS), n))]
  truth = np.vectorize(lambda v: v.encode() if isinstance(v, str) else v,
                       otypes=[object])(truth)
  leaves = min(settings.scann_num_leaves, n)
  current = dataclasses.replace(settings, scann_num_leaves=leaves)
  while True:
    scann = make_index("scann", item_vectors, item_ids, settings.index_k,
                       settings.exclude_margin, leaves,
                       current.scann_leaves_to_search,
                       current.scann_reordering)
    recall = scann_recall(scann, queries, truth)
    exact = (current.scann_leaves_to_search >= leaves and
             max(current.scann_reordering, depth) >= n)
    if min(recall.values()) >= settings.scann_min_recall or exact:
      break
    logging.info("ScaNN twin: %d of %d leaves, reordering %d finds %s of "
                 "exact search's top k, under the bar %.2f: searching wider",
                 current.scann_leaves_to_search, leaves,
                 current.scann_reordering, recall, settings.scann_min_recall)
    current = dataclasses.replace(
        current,
        scann_leaves_to_search=min(
            leaves, max(1, 2 * current.scann_leaves_to_search)),
        scann_reordering=min(n, 2 * max(current.scann_reordering, depth)))
  logging.info("ScaNN twin: %d of %d leaves searched, reordering %d: "
               "recall against exact search %s on %d item-like queries",
               current.scann_leaves_to_search, leaves,
               current.scann_reordering, recall, len(queries))
  return scann, dataclasses.replace(current, scann_recall=recall)
