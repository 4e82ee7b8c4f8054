"""The catalogue index of an exported model: exact (BruteForce, stock TF
ops) or approximate (ScaNN), and the settings saved with the model so a
catalogue refresh rebuilds it alike."""
import dataclasses
import json
import os

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

# The IndexSettings a model was exported with.
SETTINGS_PATH = os.path.join("assets.extra", "index_settings.json")
# ScaNN ops live in a namespace stock TF Serving does not know.
SCANN_SAVE_OPTIONS = tf.saved_model.SaveOptions(namespace_whitelist=["Scann"])


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


@dataclasses.dataclass
class IndexSettings:
  """How the Trainer built the index and the search scores; saved with the
  model (SETTINGS_PATH) so a catalogue refresh rebuilds them alike."""
  max_k: int
  exclude_margin: int
  text_match_weight: float = 0.0
  personalization_weight: float = 0.0
  scann_num_leaves: int = 40
  scann_leaves_to_search: int = 20
  scann_reordering: int = 500

  def write(self, export_dir: str) -> None:
    path = os.path.join(export_dir, SETTINGS_PATH)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
      f.write(json.dumps(dataclasses.asdict(self), indent=1))

  @classmethod
  def read(cls, export_dir: str) -> "IndexSettings":
    with tf.io.gfile.GFile(os.path.join(export_dir, SETTINGS_PATH)) as f:
      return cls(**json.loads(f.read()))
