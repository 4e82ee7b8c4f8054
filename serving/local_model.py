"""Loads the newest pushed version and calls its signatures in-process.

Follows TF Serving's model-base-path layout: integer-named version folders,
the highest one served. Used by `recsys recommend` and the demo until the
gRPC server (serving issue) takes over, and by tests of the pushed model.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

# Registers the WordPiece tokenizer ops the exported text tower uses; TF
# Serving's standard build links the same TF Text ops.
import tensorflow_text  # noqa: F401

from serving import protocol
from trainer import contract


class PushedModel:
  """Thin wrapper that turns Python values into signature tensors."""

  def __init__(self, path: str):
    self.path = path
    self.loaded = tf.saved_model.load(path)

  def signature(self, name: str):
    try:
      return self.loaded.signatures[name]
    except KeyError:
      raise KeyError(f"Unknown signature {name!r}; available: "
                     f"{', '.join(sorted(self.loaded.signatures))}") from None

  @staticmethod
  def _user_batch(users: Sequence[Dict]) -> Dict[str, tf.Tensor]:
    return {k: tf.constant(v, tf.int64 if v.dtype.kind == "i" else tf.string)
            for k, v in contract.user_inputs(users).items()}

  def recommend_batch(self, users: Sequence[Dict], k: int = 10,
                      exclude_seen: bool = False) -> List[Dict]:
    """Top k per user; with exclude_seen, items in each history are skipped."""
    name = (contract.RECOMMEND_UNSEEN if exclude_seen
            else contract.RECOMMEND)
    out = self.signature(name)(
        **self._user_batch(users), k=tf.constant(k, tf.int32))
    return protocol.top_k_rows({k: v.numpy() for k, v in out.items()})

  def recommend(self, user_id: str = "", age: int = 0, gender: str = "",
                occupation: str = "", history: Sequence[str] = (),
                k: int = 10, exclude_seen: bool = False) -> Dict:
    return self.recommend_batch([dict(user_id=user_id, age=age, gender=gender,
                                      occupation=occupation,
                                      history=list(history))], k,
                                exclude_seen)[0]

  def search(self, queries: Sequence, k: int = 10,
             users: Optional[Sequence[Dict]] = None) -> List[Dict]:
    """Free-text queries (str or bytes) -> top-k items each; with `users`
    (one per query) re-ordered by each user's taste."""
    name, inputs = contract.search_inputs(queries, k, users)
    out = self.signature(name)(**{key: tf.constant(v)
                                  for key, v in inputs.items()})
    return protocol.top_k_rows({k: v.numpy() for k, v in out.items()})

  def embed_items(self, items: Sequence[Dict]) -> np.ndarray:
    """Candidate vectors for items given as {item_id, title, year, genres}."""
    out = self.signature(contract.EMBED_ITEMS)(
        **{k: tf.constant(v) for k, v in contract.item_inputs(items).items()})
    return out[contract.VECTORS].numpy()

  def rank(self, user: Dict, item_ids: Sequence[str]) -> np.ndarray:
    out = self.signature(contract.RANK)(
        **self._user_batch([user]),
        item_ids=tf.constant([list(item_ids)], tf.string))
    return out[contract.SCORES][0].numpy()


def load_latest(model_base_path: str) -> PushedModel:
  return PushedModel(contract.latest_version_dir(model_base_path))


def format_recommendations(user: str, result: Dict) -> str:
  lines = [f"Top {len(result['item_ids'])} for user {user or '(new user)'}:"]
  for rank, (item, title, score) in enumerate(zip(
      result["item_ids"], result["titles"], result["scores"]), 1):
    lines.append(f"  {rank:>2}. {title:<55.55} (item {item:>5})  {score:.3f}")
  return "\n".join(lines)
