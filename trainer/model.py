"""The multi-task TFRS model: retrieval (two towers) and rating ranking."""
from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from trainer import features
from trainer import preprocessing
from trainer import towers
from trainer.config import TrainerConfig

_xf = features.transformed_name


class RecommenderModel(tfrs.models.Model):
  """Two towers trained with in-batch softmax, plus a rating head and, with
  the text tower on, a text-query tower for search.

  In-batch softmax uses the other items of a batch as negatives, so popular
  items are over-represented as negatives; passing each candidate's sampling
  probability lets the Retrieval task apply the logQ correction. Accidental
  hits (the same item twice in a batch) are removed from the negatives.

  Args:
    config: hyperparameters.
    num_users: size of the user-id vocabulary (without OOV).
    num_occupations: size of the occupation vocabulary (without OOV).
    item_probability: float array [num_items + OOV]: each item's share of
      training interactions (the in-batch sampling probability).
    text_table: float array [num_items + OOV, text_dim]: frozen text vector
      of each vocabulary item (zeros for OOV); None without the text tower.
    fine_tuned_text: instead of text_table when fine-tuning the top BERT
      blocks: see towers.ItemRepresentation.
    search_query_tables: [num_items + OOV, text_dim] tables of other texts
      about each item (its bare title, its genre list) used, with the full
      text, as training queries for search (config.search_queries).
    mean_rating: the rating head starts from the training mean.
  """

  def __init__(self, config: TrainerConfig, num_users: int,
               num_occupations: int, item_probability: np.ndarray,
               text_table: Optional[np.ndarray] = None,
               fine_tuned_text=None,
               search_query_tables: Sequence[np.ndarray] = (),
               mean_rating: float = 3.5):
    super().__init__()
    self.config = config
    if config.use_text and text_table is None and fine_tuned_text is None:
      raise ValueError("use_text needs the catalogue's text vectors")
    self.oov_item = len(item_probability) - 1
    self.items = towers.ItemRepresentation(config, len(item_probability),
                                           text_table, fine_tuned_text)
    self.search_query_tables = [
        tf.constant(t, tf.float32) for t in search_query_tables
    ] if config.use_text else []
    self.query_tower = towers.QueryTower(config, num_users, num_occupations,
                                         self.items)
    self.candidate_tower = towers.CandidateTower(config, self.items)
    if config.use_text:
      self.text_query_tower = towers.TextQueryTower(config)
      self.search_task = tfrs.tasks.Retrieval(
          temperature=config.temperature, remove_accidental_hits=True)
    self.rating_head = tf.keras.Sequential([
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(1, bias_initializer=tf.keras.initializers
                              .Constant(mean_rating)),
    ])
    self.item_probability = tf.constant(item_probability, tf.float32)
    self.retrieval_task = tfrs.tasks.Retrieval(
        temperature=config.temperature, remove_accidental_hits=True)
    # SUM reduction: tf.distribute strategies refuse the AUTO/mean default;
    # compute_loss divides by the batch size, so the loss is still a mean.
    self.ranking_task = tfrs.tasks.Ranking(
        loss=tf.keras.losses.MeanSquaredError(
            reduction=tf.keras.losses.Reduction.SUM),
        metrics=[tf.keras.metrics.RootMeanSquaredError("rmse")])

  def predict_rating(self, query: tf.Tensor, candidate: tf.Tensor) -> tf.Tensor:
    """[batch, d] x [batch, d] -> [batch] predicted rating."""
    x = tf.concat([query, candidate, query * candidate], axis=-1)
    return tf.squeeze(self.rating_head(x), axis=-1)

  def with_text(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Pins the candidate's text to its true item before ids are hidden."""
    if not self.config.use_text or towers.TEXT_VECTOR in inputs:
      return inputs
    out = dict(inputs)
    out[towers.TEXT_INDEX] = inputs[_xf(features.ITEM_ID)]
    return out

  def _drop_item_ids(self, inputs: Dict[str, tf.Tensor]
                     ) -> Dict[str, tf.Tensor]:
    """Hides a random share of candidate ids behind the OOV id in training.

    Items first seen after training all share the OOV id, so unless the
    candidate tower learns what that id means and to lean on the item's text
    and genres instead, every cold-start item looks the same.
    """
    ids = inputs[_xf(features.ITEM_ID)]
    hide = tf.random.uniform(tf.shape(ids)) < self.config.item_id_dropout
    out = dict(inputs)
    out[_xf(features.ITEM_ID)] = tf.where(
        hide, tf.cast(self.oov_item, ids.dtype), ids)
    return out

  def _drop_history_ids(self, inputs: Dict[str, tf.Tensor]
                        ) -> Dict[str, tf.Tensor]:
    """Hides a random share of history items behind the unknown id in
    training (config.history_id_dropout).

    A model that places items without an id row by their text
    (config.can_read_history_text) reads each hidden item from its text
    through the text map, a noisy copy of its id row: the history encoder
    learns to read such vectors (new items in served histories, with
    new_item_history_text) and not to lean on any one item's exact row.
    Without text, a hidden item is the unknown-id row.
    """
    key = _xf(features.HISTORY)
    history = inputs[key]
    hide = ((tf.random.uniform(tf.shape(history)) <
             self.config.history_id_dropout) & (history >= 0))
    out = dict(inputs)
    out[key] = tf.where(hide, tf.cast(self.oov_item, history.dtype), history)
    if self.config.can_read_history_text():
      out[towers.HISTORY_TEXT_ROWS] = tf.maximum(history, 0)
      out[towers.HISTORY_HAS_TEXT] = hide
    return out

  def build_variables(self, batch: Dict[str, tf.Tensor]) -> None:
    """Creates every variable a training step uses. A forward call is not
    enough: only the loss reads the search tower and the text map, and
    variables created later (in the first step) would miss warm start."""
    self.compute_loss(batch, training=False)

  def call(self, inputs: Dict[str, tf.Tensor], training=False):
    inputs = self.with_text(inputs)
    query = self.query_tower(
        self._drop_history_ids(inputs)
        if training and self.config.history_id_dropout else inputs)
    candidate = self.candidate_tower(
        self._drop_item_ids(inputs) if training else inputs,
        training=training)
    return query, candidate, self.predict_rating(query, candidate)

  def compute_loss(self, inputs, training=False):
    query, candidate, rating = self(inputs, training=training)
    item_idx = inputs[_xf(features.ITEM_ID)]
    sampling = tf.gather(self.item_probability, item_idx)
    if self.config.sampling_correction != 1.0:
      sampling = sampling ** self.config.sampling_correction
    retrieval = self.retrieval_task(
        query, candidate, candidate_sampling_probability=sampling,
        candidate_ids=item_idx, compute_metrics=False)
    # [B, 1]: Keras losses average over the last axis first, so [B] inputs
    # would make the SUM reduction a mean, and this a mean over B twice.
    ranking = self.ranking_task(
        labels=inputs[features.LABEL_KEY][:, tf.newaxis],
        predictions=rating[:, tf.newaxis]) / tf.cast(tf.shape(rating)[0],
                                                     tf.float32)
    loss = (self.config.retrieval_weight * retrieval +
            self.config.ranking_weight * ranking)
    if self.config.use_text:
      # Each text about an item is a query that should retrieve it.
      tables = self.search_query_tables
      # Optionally the search task only moves the text-query tower: the
      # candidate space stays shaped by what users watch.
      only_new = self.items.text_for_new_items_only
      if only_new:
        loss += self.config.text_map_weight * self.items.text_map_loss(
            item_idx)
      target = (candidate if self.config.search_updates_candidates and
                not only_new else tf.stop_gradient(candidate))
      for table in tables:
        text_query = self.text_query_tower(tf.gather(table, item_idx))
        loss += self.config.search_weight / len(tables) * self.search_task(
            text_query, target, candidate_sampling_probability=sampling,
            candidate_ids=item_idx, compute_metrics=False)
    return loss


def item_probability(frequencies: Dict[str, int], vocabulary: list
                     ) -> np.ndarray:
  """Per-index sampling probability, OOV bucket(s) given the smallest mass."""
  counts = np.array([frequencies.get(v, 0) for v in vocabulary], np.float64)
  counts = np.concatenate([counts, np.ones(preprocessing.OOV_BUCKETS)])
  counts = np.maximum(counts, 1.0)
  return (counts / counts.sum()).astype(np.float32)
