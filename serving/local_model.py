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

  def call(self, name: str, inputs: Dict[str, np.ndarray]
           ) -> Dict[str, np.ndarray]:
    """Runs signature `name` as the server would: inputs checked, optional
    ones (rules) filled when left out."""
    function = self.signature(name)
    checked = protocol.check_inputs(function, inputs, name)
    try:
      out = function(**protocol.as_tensors(function, checked))
    except tf.errors.InvalidArgumentError as e:
      raise ValueError(protocol.model_error_message(e)) from None
    return {key: v.numpy() for key, v in out.items()}

  def recommend_batch(self, users: Sequence[Dict], k: int = 10,
                      exclude_seen: bool = True,
                      rules: Optional[Dict] = None,
                      explain: bool = True) -> List[Dict]:
    """Top k per user, with why unless `explain=False` (the fast
    signature, where the model has it); with exclude_seen, items in each
    history are skipped. `rules`: contract.rule_inputs' keyword
    arguments."""
    return protocol.top_k_rows(self.call(*contract.recommend_request(
        users, k, exclude_seen, rules, explain, self.loaded.signatures)))

  def recommend(self, user_id: str = "", age: int = 0, gender: str = "",
                occupation: str = "", history: Sequence[str] = (),
                k: int = 10, exclude_seen: bool = True,
                rules: Optional[Dict] = None, explain: bool = True) -> Dict:
    return self.recommend_batch([dict(user_id=user_id, age=age, gender=gender,
                                      occupation=occupation,
                                      history=list(history))], k,
                                exclude_seen, rules, explain)[0]

  def search(self, queries: Sequence, k: int = 10,
             users: Optional[Sequence[Dict]] = None,
             rules: Optional[Dict] = None) -> List[Dict]:
    """Free-text queries (str or bytes) -> top-k items each; with `users`
    (one per query) re-ordered by each user's taste."""
    return protocol.top_k_rows(self.call(*contract.search_request(
        queries, k, users, rules)))

  def similar(self, items: Sequence, k: int = 10,
              rules: Optional[Dict] = None) -> List[Dict]:
    """Nearest items to each item (an id, or a dict with item_id and, for
    an item the model has never seen, title/year/genres)."""
    return protocol.top_k_rows(self.call(*contract.similar_request(
        items, k, rules)))

  def embed_items(self, items: Sequence[Dict]) -> np.ndarray:
    """Candidate vectors for items given as {item_id, title, year, genres}."""
    out = self.signature(contract.EMBED_ITEMS)(
        **{k: tf.constant(v) for k, v in contract.item_inputs(items).items()})
    return out[contract.VECTORS].numpy()

  def rank(self, user: Dict, item_ids: Sequence[str]) -> np.ndarray:
    inputs = dict(contract.user_inputs([user]), **{
        contract.ITEM_IDS: np.array([list(item_ids)], object)})
    return self.call(contract.RANK, inputs)[contract.SCORES][0]


def load_latest(model_base_path: str) -> PushedModel:
  return PushedModel(contract.latest_version_dir(model_base_path))


def format_recommendations(user: str, result: Dict,
                           heading: str = "for user") -> str:
  lines = [f"Top {len(result['item_ids'])} {heading} {user or '(new user)'}:"]
  for rank, (item, title, score) in enumerate(zip(
      result["item_ids"], result["titles"], result["scores"]), 1):
    lines.append(f"  {rank:>2}. {title:<55.55} (item {item:>5})  {score:.3f}")
  return "\n".join(lines)


def format_explained(user: str, result: Dict) -> str:
  """format_recommendations with a "Because you watched" line per item."""
  lines = [f"Top {len(result['item_ids'])} for user {user or '(new user)'}:"]
  because = result.get(contract.BECAUSE_TITLES) or [""] * len(
      result["item_ids"])
  reasons = result.get(contract.REASON) or [""] * len(result["item_ids"])
  for rank, (item, title, score, why, reason) in enumerate(zip(
      result["item_ids"], result["titles"], result["scores"], because,
      reasons), 1):
    lines.append(f"  {rank:>2}. {title:<55.55} (item {item:>5})  {score:.3f}")
    if reason == contract.REASON_SEEN:
      lines.append("      You have watched this before")
    elif why:
      lines.append(f"      Because you watched {why}")
    elif reason == contract.REASON_PROFILE:
      lines.append("      Popular with people like you (no history yet)")
  return "\n".join(lines)
