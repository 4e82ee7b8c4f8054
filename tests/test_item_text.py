"""How an item's text enters its vector (config.item_text_for).

"new_items": an item with an id row is that row alone, and only an item
without one (the OOV id) is its text, mapped into the rows' space by a map
regressed onto the rows. "every_item": id row plus projected text for all.
"""
import numpy as np
import pytest
import tensorflow as tf
from model_fixtures import toy_batch

from trainer import features
from trainer import towers
from trainer.config import TrainerConfig
from trainer.model import RecommenderModel

_xf = features.transformed_name
TEXT_DIM = 6


def _model(item_text_for: str, **config) -> RecommenderModel:
  tf.keras.utils.set_random_seed(0)  # Keras draws unseeded inits from
  # Python's random: tf.random.set_seed alone left them to chance (a dead
  # 4-unit ReLU layer failed these tests now and then)
  rng = np.random.default_rng(0)
  table = rng.normal(size=(3, TEXT_DIM)).astype(np.float32)  # 2 items + OOV
  table[-1] = 0.0
  config = TrainerConfig(embedding_dim=4, hidden_units=4, history_length=2,
                         item_text_for=item_text_for, search_queries="",
                         **config)
  return RecommenderModel(config, num_users=2, num_occupations=2,
                          item_probability=np.array([0.5, 0.3, 0.2],
                                                    np.float32),
                          text_table=table)


def _candidates(model, ids, texts, training=False):
  batch = toy_batch()
  inputs = {_xf(features.ITEM_ID): tf.constant(ids, tf.int64),
            _xf(features.GENRES): batch[_xf(features.GENRES)][:len(ids)],
            _xf(features.YEAR): batch[_xf(features.YEAR)][:len(ids)],
            towers.TEXT_VECTOR: tf.constant(texts, tf.float32)}
  return model.candidate_tower(inputs, training=training).numpy()


def test_known_items_ignore_their_text_and_new_items_are_their_text():
  model = _model("new_items")
  model.build_variables(toy_batch())
  a, b = (np.random.default_rng(s).normal(size=(2, TEXT_DIM)) for s in (1, 2))
  known = [0, 1]
  np.testing.assert_allclose(_candidates(model, known, a),
                             _candidates(model, known, b), atol=1e-6)
  oov = [2, 2]  # two new items: told apart by their text alone
  new = _candidates(model, oov, a)
  assert not np.allclose(new[0], new[1])
  assert not np.allclose(new, _candidates(model, oov, b))
  # Every item's text counts with "every_item".
  joint = _model("every_item")
  joint.build_variables(toy_batch())
  assert not np.allclose(_candidates(joint, known, a),
                         _candidates(joint, known, b))


def test_new_items_are_shortened_outside_training_only():
  # (Training hides every id: all its candidates are placed by text.
  # Text alone, so that a new item served is its training vector scaled;
  # the mix with the unknown-id row has its own test below.)
  scaled = _model("new_items", new_item_score_scale=0.8,
                  new_item_text_share=1.0, item_id_dropout=1.)
  scaled.build_variables(toy_batch())
  texts = np.random.default_rng(1).normal(size=(3, TEXT_DIM))
  ids = [0, 2, 1]  # known, new, known
  served = _candidates(scaled, ids, texts)
  unit = _candidates(scaled, ids, texts, training=True)
  np.testing.assert_allclose(np.linalg.norm(served[1]), 0.8, rtol=1e-5)
  np.testing.assert_allclose(served, unit * [[1], [0.8], [1]], atol=1e-6)
  # Training sees unit vectors: the scale is no part of the loss.
  batch = toy_batch()
  _, trained, _ = scaled(batch, training=True)
  _, evaluated, _ = scaled({**batch, _xf(features.ITEM_ID): tf.constant(
      [2, 2, 2], tf.int64)})  # all new, as training's hidden ids
  np.testing.assert_allclose(evaluated, 0.8 * trained.numpy(), atol=1e-6)
  # Without the text tower nothing is placed from text: no scale.
  no_text = RecommenderModel(
      TrainerConfig(embedding_dim=4, hidden_units=4, history_length=2,
                    use_text=False, new_item_score_scale=0.8),
      num_users=2, num_occupations=2,
      item_probability=np.array([0.5, 0.3, 0.2], np.float32))
  no_text.build_variables(batch)
  _, vectors, _ = no_text({**batch, _xf(features.ITEM_ID): tf.constant(
      [2, 2, 2], tf.int64)})
  assert np.all(np.isclose(np.linalg.norm(vectors, axis=1), 1, rtol=1e-5) |
                np.isclose(np.linalg.norm(vectors, axis=1), 0))


def test_the_text_map_regresses_onto_fixed_id_rows():
  model = _model("new_items")
  model.build_variables(toy_batch())
  items = model.items
  ids = tf.constant([0, 1, 0, 2], tf.int64)  # the OOV row is left out
  weights, bias = (v.numpy() for v in items.text_projection.weights)
  table, rows = items.text_table.numpy(), items.id_embedding.embeddings.numpy()
  expected = np.mean([np.sum((table[i] @ weights + bias - rows[i]) ** 2)
                      for i in (0, 1, 0)])
  with tf.GradientTape() as tape:
    loss = items.text_map_loss(ids)
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
  grads = tape.gradient(loss, [items.id_embedding.embeddings,
                               items.text_projection.kernel])
  assert grads[0] is None  # the rows are targets, not moved by the map
  assert np.abs(grads[1]).sum() > 0
  # Part of the model's loss, with its weight.
  batch = toy_batch()
  with_map = float(model.compute_loss(batch))
  model.config.text_map_weight = 0.0
  without = float(model.compute_loss(batch))
  np.testing.assert_allclose(
      with_map - without,
      float(items.text_map_loss(batch[_xf(features.ITEM_ID)])), rtol=1e-4)


def test_an_unknown_item_text_mode_is_refused():
  with pytest.raises(ValueError, match="'new_items' or 'every_item'"):
    _model("some_items")


def test_a_new_items_text_share_mixes_text_and_the_unknown_id_row():
  batch = toy_batch()
  texts = np.random.default_rng(3).normal(size=(3, TEXT_DIM))
  ids = [2, 0, 2]  # new, known, new
  model = _model("new_items", new_item_text_share=0.5,
                 new_item_score_scale=0.9)
  model.build_variables(batch)
  assert model.candidate_tower.new_item_text_share == 0.5
  by_share = {}
  for share in (1.0, 0.0, 0.5):  # the same weights, served three ways
    model.candidate_tower.new_item_text_share = share
    by_share[share] = _candidates(model, ids, texts)
  unit = _candidates(model, ids, texts, training=True)
  # Training is untouched: text alone, unit length.
  np.testing.assert_allclose(unit, by_share[1.0] / [[0.9], [1], [0.9]],
                             atol=1e-6)
  # Share 0: the unknown-id row's vector (with each item's genres and
  # year), whatever the text says: what a no-text model serves.
  other_texts = np.random.default_rng(4).normal(size=(3, TEXT_DIM))
  model.candidate_tower.new_item_text_share = 0.0
  np.testing.assert_allclose(_candidates(model, ids, other_texts),
                             by_share[0.0], atol=1e-6)
  assert not np.allclose(by_share[0.0][0], by_share[1.0][0])
  # Known items are their id rows whatever the share.
  np.testing.assert_allclose(by_share[0.0][1], by_share[1.0][1], atol=1e-6)
  np.testing.assert_allclose(by_share[0.5][1], by_share[1.0][1], atol=1e-6)
  # An even mix lies between the two, at the configured length.
  for row in (0, 2):
    expected = by_share[1.0][row] + by_share[0.0][row]
    expected = 0.9 * expected / np.linalg.norm(expected)
    np.testing.assert_allclose(by_share[0.5][row], expected, atol=1e-5)
