"""The trained model as functions of raw request fields (Towers): what the
exported module (trainer/export.py) calls, and what a catalogue refresh
takes from a loaded serving model to index a new catalogue."""
from typing import Dict

import tensorflow as tf

from trainer import contract
from trainer import features
from trainer import preprocessing
from trainer import text
from trainer import towers

# Text of the items of a history, one row per non-empty id in row-major
# order (a compact SparseTensor's values), and whether the catalogue had one.
HISTORY_TEXT_INPUTS = (tf.TensorSpec([None, None], tf.float32),
                       tf.TensorSpec([None], tf.bool))


def dense_to_sparse_ids(ids: tf.Tensor) -> tf.SparseTensor:
  """[B, N] strings with "" padding anywhere -> compact [B, n] SparseTensor."""
  return tf.ragged.boolean_mask(ids, tf.not_equal(ids, "")).to_sparse()


def with_history_text(transformed: Dict[str, tf.Tensor],
                      history: tf.SparseTensor, text_values: tf.Tensor,
                      has_text: tf.Tensor) -> Dict[str, tf.Tensor]:
  """Transform's outputs plus towers.HISTORY_TEXT_VECTORS and
  HISTORY_HAS_TEXT, placed like Transform places the history's ids (its
  newest items, right-aligned): `text_values` [n, text_dim] and `has_text`
  [n] belong to the n values of the compact `history`, in order."""
  width = transformed[features.transformed_name(features.HISTORY)].shape[1]
  if width is None:  # our Transform writes a FixedLenFeature (history_width)
    raise ValueError("with_history_text needs Transform's history as a "
                     "fixed-width [batch, width] feature")
  count = tf.shape(history.values, out_type=tf.int64)[0]
  positions = preprocessing.recent_history(
      tf.SparseTensor(history.indices, tf.range(count), history.dense_shape),
      width)
  # Empty positions point at one appended row without text.
  positions = tf.where(positions >= 0, positions, count)
  blank = tf.zeros([1, tf.shape(text_values)[1]], text_values.dtype)
  out = dict(transformed)
  out[towers.HISTORY_TEXT_VECTORS] = tf.gather(
      tf.concat([text_values, blank], 0), positions)
  out[towers.HISTORY_HAS_TEXT] = tf.gather(
      tf.concat([has_text, [False]], 0), positions)
  return out


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
    history_text: also export query_with_history_text and
      score_examples_with_history_text (TrainerConfig.new_item_history_text);
      a RecommenderModule uses them when they are there.
  """

  def __init__(self, model, tft_layer, text_encoder=None,
               item_text_encoder=None, history_text=False):
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
      self.candidates_and_text = tf.function(
          self._candidates_and_text,
          input_signature=[*contract.ITEM_INPUTS.values()])
    if text_encoder is not None and history_text:
      self.query_with_history_text = tf.function(
          self._query_with_history_text,
          input_signature=[*contract.USER_INPUTS.values(),
                           *HISTORY_TEXT_INPUTS])
      self.score_examples_with_history_text = tf.function(
          self._score_examples_with_history_text,
          input_signature=[contract.EXAMPLES_INPUT, *HISTORY_TEXT_INPUTS])

  def _transform(self, raw: Dict[str, tf.Tensor], batch
                 ) -> Dict[str, tf.Tensor]:
    return self.tft_layer(features.complete_raw_features(raw, batch))

  def _user_features(self, user_id, age, gender, occupation,
                     history_item_ids):
    column = lambda x: tf.expand_dims(x, -1)  # noqa: E731
    raw = {features.USER_ID: column(user_id), features.AGE: column(age),
           features.GENDER: column(gender),
           features.OCCUPATION: column(occupation),
           features.HISTORY: dense_to_sparse_ids(history_item_ids)}
    return raw, self._transform(raw, tf.shape(user_id)[0])

  @tf.function(input_signature=[*contract.USER_INPUTS.values()])
  def query(self, user_id, age, gender, occupation, history_item_ids):
    """User fields -> [B, d] unit query vectors."""
    _, transformed = self._user_features(user_id, age, gender, occupation,
                                         history_item_ids)
    return self.model.query_tower(self.model.with_text(transformed))

  def _query_with_history_text(self, user_id, age, gender, occupation,
                               history_item_ids, text_values, has_text):
    """`query`, with each history item that has no id row (new since
    training) read from its text (see HISTORY_TEXT_INPUTS)."""
    raw, transformed = self._user_features(user_id, age, gender, occupation,
                                           history_item_ids)
    return self.model.query_tower(self.model.with_text(with_history_text(
        transformed, raw[features.HISTORY], text_values, has_text)))

  def _score_examples_with_history_text(self, examples, text_values,
                                        has_text):
    """`score_examples`, history text as in query_with_history_text."""
    raw = tf.io.parse_example(examples, features.raw_feature_spec())
    query, _, rating = self.model(with_history_text(
        self.tft_layer(raw), raw[features.HISTORY], text_values, has_text))
    return query, rating

  def _encode_text(self, query):
    """[B] strings -> [B, text_dim] frozen BERT vectors."""
    return self.text_encoder(query)

  def _text_query(self, encoded):
    """[B, text_dim] BERT vectors -> [B, d] search query vectors."""
    return self.model.text_query_tower(encoded)

  @tf.function(input_signature=[*contract.ITEM_INPUTS.values()])
  def candidates(self, item_id, title, year, genres):
    """Item fields -> [B, d] candidate vectors, text encoded in-graph."""
    item_text = None
    if self.item_text_encoder is not None:
      item_text = self.item_text_encoder(text.item_text(title, year, genres))
    return self._candidate_vectors(item_id, title, year, genres, item_text)

  def _candidates_and_text(self, item_id, title, year, genres):
    """Item fields -> ([B, d] candidate vectors, [B, text_dim] frozen text
    vectors): what a catalogue refresh indexes. BERT runs once per item
    unless the item side's top blocks were fine-tuned (then the candidate
    needs its own encoding and search the frozen one)."""
    strings = text.item_text(title, year, genres)
    frozen = self.text_encoder(strings)
    item_text = (frozen if self.item_text_encoder is self.text_encoder
                 else self.item_text_encoder(strings))
    return (self._candidate_vectors(item_id, title, year, genres, item_text),
            frozen)

  def _candidate_vectors(self, item_id, title, year, genres, item_text):
    column = lambda x: tf.expand_dims(x, -1)  # noqa: E731
    raw = {features.ITEM_ID: column(item_id), features.TITLE: column(title),
           features.YEAR: column(year),
           features.GENRES: dense_to_sparse_ids(genres)}
    transformed = dict(self._transform(raw, tf.shape(item_id)[0]))
    if item_text is not None:
      transformed[towers.TEXT_VECTOR] = item_text
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
