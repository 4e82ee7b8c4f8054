"""The short-term history encoders: what they may and may not look at."""
import numpy as np
import pytest
import tensorflow as tf
from model_fixtures import toy_batch

from trainer import features
from trainer import towers
from trainer.config import TrainerConfig
from trainer.model import RecommenderModel


def test_attention_reads_the_valid_items_only():
  tf.keras.utils.set_random_seed(0)
  encoder = towers.AttentionEncoder(8, 4)
  vectors = tf.random.normal([2, 4, 8])
  mask = tf.constant([[False, False, True, True]] * 2)
  # Same valid items, different padding contents.
  padded = tf.concat([tf.random.normal([2, 2, 8]), vectors[:, 2:]], axis=1)
  np.testing.assert_allclose(encoder(vectors, mask)[:, -1],
                             encoder(padded, mask)[:, -1], atol=1e-5)
  # Order matters (positions are embedded): swapping the two items changes
  # the user's short-term state.
  swapped = tf.concat([vectors[:, :2], vectors[:, 3:], vectors[:, 2:3]], 1)
  assert not np.allclose(encoder(vectors, mask)[:, -1],
                         encoder(swapped, mask)[:, -1])


@pytest.mark.parametrize("encoder", ["gru", "attention"])
def test_both_encoders_train_the_full_model(encoder):
  config = TrainerConfig(history_encoder=encoder, use_text=False,
                         history_length=2)
  model = RecommenderModel(config, num_users=2, num_occupations=2,
                           item_probability=np.array([0.5, 0.4, 0.1],
                                                     np.float32))
  model.compile(optimizer=tf.keras.optimizers.Adam(0.05))
  batch = toy_batch()
  first = float(model.compute_loss(batch))
  model.fit(tf.data.Dataset.from_tensors(batch).repeat(20), verbose=0)
  assert np.isfinite(first) and float(model.compute_loss(batch)) < first


def test_an_unknown_encoder_is_refused():
  with pytest.raises(ValueError, match="'gru' or 'attention'"):
    RecommenderModel(TrainerConfig(history_encoder="lstm", use_text=False),
                     num_users=2, num_occupations=2,
                     item_probability=np.array([0.5, 0.4, 0.1], np.float32))


def test_history_text_stands_in_only_for_items_without_an_id_row():
  """HISTORY_TEXT_VECTORS (bench-seeds' full_history_text row): a history
  item new since training (the OOV row, 2 here) is read from its text;
  items with an id row, and every item without the input, are unchanged."""
  tf.keras.utils.set_random_seed(0)
  config = TrainerConfig(history_length=2, embedding_dim=8, hidden_units=8)
  model = RecommenderModel(config, num_users=2, num_occupations=2,
                           item_probability=np.array([0.5, 0.4, 0.1],
                                                     np.float32),
                           text_table=np.random.default_rng(0).normal(
                               size=(3, 5)).astype(np.float32))
  batch = toy_batch()
  batch[features.transformed_name(features.HISTORY)] = tf.constant(
      [[-1, 2], [-1, -1], [0, 1]], tf.int64)
  plain = model.query_tower(batch).numpy()
  texts = np.random.default_rng(1).normal(size=(3, 2, 5)).astype(np.float32)
  with_text = model.query_tower(
      {**batch, towers.HISTORY_TEXT_VECTORS: tf.constant(texts)}).numpy()
  # Only the first user's history holds the new item.
  assert not np.allclose(with_text[0], plain[0])
  np.testing.assert_allclose(with_text[1:], plain[1:], atol=1e-6)


def test_history_text_is_refused_where_it_cannot_apply():
  """Checked before training, not after it at export."""
  TrainerConfig(new_item_history_text=True).check()
  for change in (dict(use_text=False), dict(item_text_for="every_item"),
                 dict(text_finetune_layers=1)):
    with pytest.raises(ValueError, match="new_item_history_text"):
      TrainerConfig(new_item_history_text=True, **change).check()
    TrainerConfig(**change).check()  # off, nothing to refuse


def _text_model(**config):
  tf.keras.utils.set_random_seed(0)
  return RecommenderModel(
      TrainerConfig(history_length=2, embedding_dim=8, hidden_units=8,
                    **config),
      num_users=2, num_occupations=2,
      item_probability=np.array([0.5, 0.4, 0.1], np.float32),
      text_table=np.random.default_rng(0).normal(size=(3, 5)).astype(
          np.float32))


def test_history_id_dropout_reads_hidden_items_from_their_text():
  """config.history_id_dropout, training only: a hidden history item is
  the unknown-id row, read from its own text as a new item in a served
  history would be with HISTORY_TEXT_VECTORS; padding stays padding; the
  text map gets no gradient through it (only its regression moves it)."""
  model = _text_model(history_id_dropout=1.0)  # hide every item
  batch = toy_batch()
  key = features.transformed_name(features.HISTORY)
  dropped = model._drop_history_ids(batch)
  history = batch[key].numpy()
  np.testing.assert_array_equal(dropped[key].numpy(),
                                np.where(history >= 0, 2, -1))
  texts = model.items.text_table.numpy()[np.maximum(history, 0)]
  served = model.query_tower({**batch, key: dropped[key],
                              towers.HISTORY_TEXT_VECTORS: texts})
  with tf.GradientTape() as tape:
    trained = model.query_tower(dropped)
    total = tf.reduce_sum(trained)
  np.testing.assert_allclose(trained.numpy(), served.numpy(), atol=1e-6)
  assert not np.allclose(trained.numpy()[2], model.query_tower(
      {**batch, key: dropped[key]}).numpy()[2])  # not the bare unknown row
  assert tape.gradient(total, model.items.text_projection.kernel) is None


def test_history_id_dropout_hides_its_share_and_only_in_training():
  model = _text_model(history_id_dropout=0.3)
  key = features.transformed_name(features.HISTORY)
  many = {key: tf.zeros([2000, 10], tf.int64)}
  hidden = np.mean(model._drop_history_ids(many)[key].numpy() == 2)
  assert 0.27 < hidden < 0.33
  batch = toy_batch()
  # Out of training the history is read as given.
  np.testing.assert_allclose(model(batch)[0].numpy(),
                             model.query_tower(model.with_text(batch)).numpy(),
                             atol=1e-6)
  # Without text a hidden item is the unknown-id row alone.
  no_text = RecommenderModel(
      TrainerConfig(history_length=2, use_text=False, history_id_dropout=1.0),
      num_users=2, num_occupations=2,
      item_probability=np.array([0.5, 0.4, 0.1], np.float32))
  assert towers.HISTORY_TEXT_ROWS not in no_text._drop_history_ids(batch)
