"""The exported SavedModel: raw request fields in, item ids, titles, scores out.

The module carries the Transform graph, both towers, the rating head and a
top-k index over the whole catalogue, so TF Serving needs nothing else: no
feature code on the client, no train/serve skew.

Signatures (all tensors batched on axis 0 unless noted):
  recommend(user_id, age, gender, occupation, history_item_ids [B, H] ("" pads),
            k [] int32) -> item_ids [B, k], titles [B, k], scores [B, k]
  recommend_unseen(same inputs) -> the same, excluding history_item_ids
  rank(same user fields, item_ids [B, N]) -> scores [B, N] (predicted rating)
  evaluate(examples [B] serialized tf.Example) -> rating [B], hit_at_100 [B]
With the text tower (the default) also:
  search(query [B] str, k [] int32) -> item_ids, titles, scores [B, k]
  personalized_search(query [B] str, the recommend user fields, k [] int32)
      -> the same, re-ordered by the user's taste (see personalized_search)
  embed_items(item_id [B], title [B], year [B] int64, genres [B, G] ("" pads))
      -> vectors [B, d]: candidate vectors for new (cold-start) items
"""
import dataclasses
import json
import os
from typing import Dict, Optional

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from trainer import contract
from trainer import features
from trainer import text
from trainer import towers


def dense_to_sparse_ids(ids: tf.Tensor) -> tf.SparseTensor:
  """[B, N] strings with "" padding anywhere -> compact [B, n] SparseTensor."""
  return tf.ragged.boolean_mask(ids, tf.not_equal(ids, "")).to_sparse()


def _moments(values: tf.Tensor, valid: tf.Tensor):
  """Mean and standard deviation per row over the `valid` entries, [B, 1]."""
  weight = tf.cast(valid, values.dtype)
  count = tf.maximum(tf.reduce_sum(weight, -1, keepdims=True), 1.0)
  mean = tf.reduce_sum(values * weight, -1, keepdims=True) / count
  var = tf.reduce_sum(tf.square(values - mean) * weight, -1,
                      keepdims=True) / count
  return mean, tf.sqrt(var)


class Towers(tf.Module):
  """The trained model as functions of raw request fields.

  Everything learned lives here; everything about the catalogue (ids,
  titles, vectors, the index) lives in RecommenderModule. A catalogue refresh
  (pipeline/catalog_refresh.py) therefore wraps the *loaded* Towers of the
  serving model in a new RecommenderModule: same weights, new index, no
  retraining. Each method is a tf.function with an input signature, so it
  survives save and load.

  Args:
    model: the trained RecommenderModel.
    tft_layer: Transform's TransformFeaturesLayer.
    text_encoder: the frozen TextEncoder, or None without the text tower.
    item_text_encoder: encodes new items' text for the candidate tower when
      the item side's top BERT blocks were fine-tuned (default:
      text_encoder).
  """

  def __init__(self, model, tft_layer, text_encoder=None,
               item_text_encoder=None):
    super().__init__()
    self.model = model
    self.tft_layer = tft_layer
    self.text_encoder = text_encoder
    self.item_text_encoder = item_text_encoder or text_encoder
    if text_encoder is not None:
      self.encode_text = tf.function(
          self._encode_text, input_signature=[contract.QUERY_INPUT])
      self.text_query = tf.function(
          self._text_query,
          input_signature=[tf.TensorSpec([None, None], tf.float32)])

  def _transform(self, raw: Dict[str, tf.Tensor], batch
                 ) -> Dict[str, tf.Tensor]:
    return self.tft_layer(features.complete_raw_features(raw, batch))

  @tf.function(input_signature=[*contract.USER_INPUTS.values()])
  def query(self, user_id, age, gender, occupation, history_item_ids):
    """User fields -> [B, d] unit query vectors."""
    column = lambda x: tf.expand_dims(x, -1)  # noqa: E731
    raw = {features.USER_ID: column(user_id), features.AGE: column(age),
           features.GENDER: column(gender),
           features.OCCUPATION: column(occupation),
           features.HISTORY: dense_to_sparse_ids(history_item_ids)}
    transformed = self._transform(raw, tf.shape(user_id)[0])
    return self.model.query_tower(self.model.with_text(transformed))

  def _encode_text(self, query):
    """[B] strings -> [B, text_dim] frozen BERT vectors."""
    return self.text_encoder(query)

  def _text_query(self, encoded):
    """[B, text_dim] BERT vectors -> [B, d] search query vectors."""
    return self.model.text_query_tower(encoded)

  @tf.function(input_signature=[*contract.ITEM_INPUTS.values()])
  def candidates(self, item_id, title, year, genres):
    """Item fields -> [B, d] candidate vectors, text encoded in-graph."""
    column = lambda x: tf.expand_dims(x, -1)  # noqa: E731
    raw = {features.ITEM_ID: column(item_id), features.TITLE: column(title),
           features.YEAR: column(year),
           features.GENRES: dense_to_sparse_ids(genres)}
    transformed = dict(self._transform(raw, tf.shape(item_id)[0]))
    if self.item_text_encoder is not None:
      transformed[towers.TEXT_VECTOR] = self.item_text_encoder(
          text.item_text(title, year, genres))
    return self.model.candidate_tower(transformed)

  @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32),
                                tf.TensorSpec([None, None], tf.float32)])
  def rating(self, query, candidate):
    """[N, d] x [N, d] -> [N] predicted ratings."""
    return self.model.predict_rating(query, candidate)

  @tf.function(input_signature=[contract.EXAMPLES_INPUT])
  def score_examples(self, examples):
    """Serialized interaction examples -> their users' query vectors [B, d]
    and predicted ratings [B], through the training path."""
    transformed = self.tft_layer(
        tf.io.parse_example(examples, features.raw_feature_spec()))
    query, _, rating = self.model(transformed)
    return query, rating


class RecommenderModule(tf.Module):
  """What the Trainer exports; see the module docstring for the signatures.

  Args:
    towers: the trained Towers, or a loaded model's (catalogue refresh).
    item_ids: [N] catalogue ids; titles: [N] their titles.
    item_vectors: [N + 1, d] candidate vectors; the last row is the vector of
      an unknown item (the out-of-vocabulary path), used by `rank`.
    max_k: largest k served.
    index: a tfrs TopK layer (BruteForce or ScaNN) already indexed over the
      catalogue (see make_index); the two are interchangeable here.
    item_text_vectors: [N, text_dim] frozen BERT vectors of the catalogue
      (with the text tower), for search's direct text match.
    text_match_weight: weight of that match in search scores.
    personalization_weight: weight of the user's taste in
      personalized_search.
  """

  def __init__(self, towers: Towers, item_ids: np.ndarray,
               titles: np.ndarray, item_vectors: np.ndarray, max_k: int,
               index: tfrs.layers.factorized_top_k.TopK,
               item_text_vectors: Optional[np.ndarray] = None,
               text_match_weight: float = 0.0,
               personalization_weight: float = 0.0):
    super().__init__()
    self.towers = towers
    self.has_text = item_text_vectors is not None
    self.personalization_weight = personalization_weight
    self.text_match_weight = text_match_weight
    if self.has_text:
      # Frozen BERT vector of each catalogue row; a zero row for unknowns.
      self.item_text_vectors = tf.Variable(np.concatenate(
          [item_text_vectors, np.zeros_like(item_text_vectors[:1])]),
                                           trainable=False)
    self.max_k = max_k
    first = item_ids[0]
    self.first_item_id = first.decode() if isinstance(first, bytes) else first
    ids = tf.constant(item_ids)
    # What was indexed, readable after loading (catalogue refresh reports
    # which items are new).
    self.catalog_ids = tf.Variable(ids, trainable=False)
    self.index = index
    self.item_vectors = tf.Variable(item_vectors, trainable=False)
    self.titles = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(ids, tf.constant(titles)), "")
    self.rows = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            ids, tf.range(len(item_ids), dtype=tf.int64)), len(item_ids))

  def _query(self, user_id, age, gender, occupation, history_item_ids):
    return self.towers.query(user_id, age, gender, occupation,
                             history_item_ids)

  def _top_k(self, query, k, exclude=None):
    """Top k of the whole catalogue; `exclude` [B, H] ids ("" pads) are
    skipped, so k items come back even when many were seen."""
    # The index returns index_depth(max_k) >= max_k: room to drop seen items.
    scores, ids = self.index(query)
    return self._select(scores, ids, k, exclude)

  def _select(self, scores, ids, k, exclude=None):
    """Best k of [B, depth] scored ids (re-sorted: callers may have
    re-scored them), skipping `exclude`."""
    k = tf.clip_by_value(k, 1, self.max_k)
    if exclude is not None:
      seen = tf.reduce_any(
          tf.equal(ids[:, :, tf.newaxis], exclude[:, tf.newaxis, :]), axis=-1)
      scores = tf.where(seen, tf.constant(-1e9, scores.dtype), scores)
    scores, order = tf.math.top_k(scores, k=tf.minimum(k, tf.shape(ids)[1]))
    ids = tf.gather(ids, order, batch_dims=1)
    return {contract.ITEM_IDS: ids, contract.TITLES: self.titles.lookup(ids),
            contract.SCORES: scores}

  @tf.function(input_signature=[*contract.USER_INPUTS.values(),
                                contract.K_INPUT])
  def recommend(self, user_id, age, gender, occupation, history_item_ids, k):
    return self._top_k(
        self._query(user_id, age, gender, occupation, history_item_ids), k)

  @tf.function(input_signature=[*contract.USER_INPUTS.values(),
                                contract.K_INPUT])
  def recommend_unseen(self, user_id, age, gender, occupation,
                       history_item_ids, k):
    """`recommend`, leaving out the items in `history_item_ids`."""
    return self._top_k(
        self._query(user_id, age, gender, occupation, history_item_ids), k,
        exclude=history_item_ids)

  @tf.function(input_signature=[contract.QUERY_INPUT, contract.K_INPUT])
  def search(self, query, k):
    """Free text -> the same catalogue index `recommend` uses."""
    return self._select(*self._search_candidates(query), k)

  def _search_candidates(self, query):
    """Candidates for a text query, and their scores [B, 2 * depth].

    They come from two places: the shared index searched with the learned
    text tower (what people watch) and the catalogue's closest item texts by
    the direct match of frozen BERT vectors (what the words say; this also
    finds items too new for the tower to place well, e.g. right after a
    catalogue refresh). Every candidate gets the same score: tower score +
    text_match_weight * direct match; an item found both ways counts once.
    """
    encoded = self.towers.encode_text(query)
    text_query = self.towers.text_query(encoded)
    _, from_index = self.index(text_query)
    catalogue_text = self.item_text_vectors[:-1]
    _, rows = tf.math.top_k(
        tf.matmul(encoded, catalogue_text, transpose_b=True),
        k=tf.minimum(tf.shape(from_index)[1], tf.shape(catalogue_text)[0]))
    from_text = tf.gather(self.catalog_ids, rows)
    twice = tf.reduce_any(tf.equal(from_text[:, :, tf.newaxis],
                                   from_index[:, tf.newaxis, :]), axis=-1)
    ids = tf.concat([from_index, from_text], axis=1)
    item_text = tf.gather(self.item_text_vectors, self.rows.lookup(ids))
    scores = (tf.einsum("bd,bkd->bk", text_query,
                        self.indexed_item_vectors(ids)) +
              self.text_match_weight *
              tf.einsum("bd,bkd->bk", encoded, item_text))
    dropped = tf.concat([tf.zeros_like(twice), twice], axis=1)
    return tf.where(dropped, tf.constant(-1e9, scores.dtype), scores), ids

  @tf.function(input_signature=[contract.QUERY_INPUT,
                                *contract.USER_INPUTS.values(),
                                contract.K_INPUT])
  def personalized_search(self, query, user_id, age, gender, occupation,
                          history_item_ids, k):
    """`search` for one user: the text query picks the candidates from the
    shared index (what matches), the user's taste re-orders them:
    score = search score + personalization_weight * taste, where taste is
    the user's cosine standardised over the candidates and put on the search
    scores' scale: the weight says how many spreads of search score one
    spread of taste is worth, whatever the training length made the raw
    cosines' range (a briefly trained model's cosines barely differ, and a
    raw weight then re-ordered nothing). Relevance stays with the text; among
    the items that match, the user's come first. Empty user fields make this
    `search` with an average user's tilt."""
    scores, ids = self._search_candidates(query)
    user = self._query(user_id, age, gender, occupation, history_item_ids)
    taste = tf.einsum("bd,bkd->bk", user, self.indexed_item_vectors(ids))
    valid = scores > -1e8  # not a duplicate candidate
    taste_mean, taste_spread = _moments(taste, valid)
    _, score_spread = _moments(scores, valid)
    taste = (taste - taste_mean) / (taste_spread + 1e-6) * score_spread
    return self._select(scores + self.personalization_weight * taste, ids, k)

  @tf.function(input_signature=[*contract.ITEM_INPUTS.values()])
  def embed_items(self, item_id, title, year, genres):
    """Candidate vectors from item text and metadata, encoded in-graph."""
    return {contract.VECTORS: self.towers.candidates(item_id, title, year,
                                                     genres)}

  @tf.function(input_signature=[tf.TensorSpec(None, tf.string)])
  def indexed_item_vectors(self, item_ids):
    """Vectors the index holds for `item_ids` (any shape); unknown ids get
    the out-of-vocabulary item's vector. Not a signature: a method kept in
    the SavedModel for tools and tests."""
    return tf.gather(self.item_vectors, self.rows.lookup(item_ids))

  @tf.function(input_signature=[*contract.USER_INPUTS.values(),
                                contract.ITEM_IDS_INPUT])
  def rank(self, user_id, age, gender, occupation, history_item_ids, item_ids):
    query = self._query(user_id, age, gender, occupation, history_item_ids)
    candidates = self.indexed_item_vectors(item_ids)
    n = tf.shape(item_ids)[1]
    queries = tf.repeat(query[:, tf.newaxis, :], n, axis=1)
    d = tf.shape(query)[-1]
    scores = self.towers.rating(tf.reshape(queries, [-1, d]),
                                tf.reshape(candidates, [-1, d]))
    return {contract.SCORES: tf.reshape(scores, tf.shape(item_ids))}

  @tf.function(input_signature=[contract.EXAMPLES_INPUT])
  def evaluate(self, examples):
    """For TFMA: predicted rating, and where the rated item lands in the
    top EVAL_TOP_K of what `recommend_unseen` returns for the example's user
    (the items in its history excluded: a user does not re-rate a movie):
    in the top 100, in the top 10, and its NDCG@10 gain."""
    query, rating = self.towers.score_examples(examples)
    spec = features.raw_feature_spec()
    parsed = tf.io.parse_example(examples, {
        key: spec[key] for key in (features.ITEM_ID, features.HISTORY)})
    seen = tf.sparse.to_dense(parsed[features.HISTORY], default_value="")
    top = self._top_k(query, tf.constant(contract.EVAL_TOP_K), exclude=seen)
    found = tf.equal(top[contract.ITEM_IDS], parsed[features.ITEM_ID])
    hit = tf.reduce_any(found, axis=1)
    hit_at_10 = tf.reduce_any(found[:, :10], axis=1)
    rank = tf.cast(tf.argmax(tf.cast(found, tf.int32), axis=1), tf.float32)
    gain = tf.where(hit_at_10, tf.math.log(2.0) / tf.math.log(rank + 2.0), 0.0)
    return {contract.EVAL_RATING: rating,
            contract.EVAL_HIT: tf.cast(hit, tf.float32),
            contract.EVAL_HIT_AT_10: tf.cast(hit_at_10, tf.float32),
            contract.EVAL_NDCG_AT_10: gain}


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


def export_catalog(towers: Towers, item_ids: np.ndarray, titles: np.ndarray,
                   item_vectors: np.ndarray,
                   item_text_vectors: Optional[np.ndarray],
                   settings: IndexSettings, export_dir: str,
                   scann: bool = True) -> RecommenderModule:
  """Indexes `item_vectors` ([N + 1, d], OOV last) and saves the stock
  (brute-force) SavedModel at `export_dir` and, with `scann`, its ScaNN twin
  (contract.scann_twin); returns the stock module. The Trainer and the
  catalogue refresh both export through here."""
  def module(kind: str) -> RecommenderModule:
    return RecommenderModule(
        towers, item_ids=item_ids, titles=titles, item_vectors=item_vectors,
        max_k=settings.max_k, item_text_vectors=item_text_vectors,
        text_match_weight=settings.text_match_weight,
        personalization_weight=settings.personalization_weight,
        index=make_index(kind, item_vectors[:-1], item_ids, settings.max_k,
                         settings.exclude_margin, settings.scann_num_leaves,
                         settings.scann_leaves_to_search,
                         settings.scann_reordering))

  stock = module("brute_force")
  save(stock, export_dir)
  settings.write(export_dir)
  if scann:
    twin = contract.scann_twin(export_dir)
    save(module("scann"), twin)
    settings.write(twin)
  return stock


def save(module: RecommenderModule, export_dir: str,
         model_name: str = contract.MODEL_NAME) -> None:
  """Saves the SavedModel plus TF Serving warm-up records for each signature."""
  signatures = {
      contract.RECOMMEND: module.recommend,
      contract.RECOMMEND_UNSEEN: module.recommend_unseen,
      contract.SERVING_DEFAULT: module.recommend,
      contract.RANK: module.rank,
      contract.EVALUATE: module.evaluate,
  }
  if module.has_text:
    signatures[contract.SEARCH] = module.search
    signatures[contract.PERSONALIZED_SEARCH] = module.personalized_search
    signatures[contract.EMBED_ITEMS] = module.embed_items
  scann = isinstance(module.index, tfrs.layers.factorized_top_k.ScaNN)
  tf.saved_model.save(module, export_dir, signatures=signatures,
                      options=SCANN_SAVE_OPTIONS if scann else None)
  from trainer import warmup
  warmup.write_warmup(export_dir, model_name, signatures,
                      item_id=module.first_item_id)
