"""Warm start across changed vocabularies, on small models built here (the
pipeline test warm-starts a real run from the pushed model)."""
import os

import numpy as np
import pytest
import tensorflow as tf
from model_fixtures import toy_batch

from trainer import features
from trainer import task
from trainer import warm_start
from trainer.config import TrainerConfig
from trainer.model import RecommenderModel

CONFIG = TrainerConfig(use_text=False, embedding_dim=4, hidden_units=4,
                       history_length=2)


def _model(users, items):
  model = RecommenderModel(
      CONFIG, num_users=len(users), num_occupations=2,
      item_probability=np.full(len(items) + 1, 1 / (len(items) + 1),
                               np.float32))
  model(toy_batch())
  return model


def _export(model, users, items, path):
  """What the Trainer exports, as far as warm start reads it: a SavedModel
  whose root has the model as `model`, and the vocabularies as assets."""
  root = tf.Module()
  root.towers = tf.Module()  # as trainer/export.py nests it
  root.towers.model = model
  tf.saved_model.save(root, path)
  os.makedirs(os.path.join(path, "assets"), exist_ok=True)
  for name, ids in ((features.USER_VOCAB, users),
                    (features.ITEM_VOCAB, items)):
    with open(os.path.join(path, "assets", name), "w") as f:
      f.write("\n".join(ids) + "\n")


def _rows(model):
  return (model.query_tower.user_embedding.embeddings.numpy(),
          model.items.id_embedding.embeddings.numpy())


def test_rows_follow_ids_across_vocabularies(tmp_path):
  old_users, old_items = ["u1", "u2"], ["i1", "i2"]
  old = _model(old_users, old_items)
  _export(old, old_users, old_items, str(tmp_path / "base"))
  # Next period: u1 is gone from the top of the vocabulary, u3 and i3 are
  # new, and the order changed.
  users, items = ["u2", "u3", "u1"], ["i3", "i2", "i1"]
  tf.random.set_seed(1)
  new = _model(users, items)
  fresh_users, fresh_items = _rows(new)
  report = warm_start.warm_start(new, str(tmp_path / "base"), {
      features.USER_VOCAB: users, features.ITEM_VOCAB: items})
  old_user_rows, old_item_rows = _rows(old)
  user_rows, item_rows = _rows(new)
  np.testing.assert_array_equal(user_rows[0], old_user_rows[1])  # u2
  np.testing.assert_array_equal(user_rows[2], old_user_rows[0])  # u1
  np.testing.assert_array_equal(user_rows[1], fresh_users[1])    # u3: new
  np.testing.assert_array_equal(user_rows[-1], old_user_rows[-1])  # OOV
  np.testing.assert_array_equal(item_rows[2], old_item_rows[0])  # i1
  np.testing.assert_array_equal(item_rows[0], fresh_items[0])    # i3: new
  assert not np.array_equal(fresh_items[0], old_item_rows[0])
  # Tower layers carry over whole.
  np.testing.assert_array_equal(new.rating_head.weights[0].numpy(),
                                old.rating_head.weights[0].numpy())
  np.testing.assert_array_equal(new.candidate_tower.out.kernel.numpy(),
                                old.candidate_tower.out.kernel.numpy())
  assert report.carried_rows == {features.USER_VOCAB: 2,
                                 features.ITEM_VOCAB: 2}
  assert report.new_rows == {features.USER_VOCAB: 1, features.ITEM_VOCAB: 1}
  assert report.fresh == []
  # Warm-started, the model scores the carried users as the old one did.
  batch = toy_batch()
  batch[features.transformed_name(features.USER_ID)] = tf.constant(
      [2, 0, 0], tf.int64)  # u1, u2, u2 in the new vocabulary
  old_batch = dict(batch)
  old_batch[features.transformed_name(features.USER_ID)] = tf.constant(
      [0, 1, 1], tf.int64)
  old_batch[features.transformed_name(features.ITEM_ID)] = tf.constant(
      [0, 1, 0], tf.int64)  # i1, i2, i1
  batch[features.transformed_name(features.ITEM_ID)] = tf.constant(
      [2, 1, 2], tf.int64)
  old_batch[features.transformed_name(features.HISTORY)] = tf.constant(
      [[-1, 1], [-1, -1], [0, 1]], tf.int64)
  batch[features.transformed_name(features.HISTORY)] = tf.constant(
      [[-1, 1], [-1, -1], [2, 1]], tf.int64)
  for a, b in zip(new(batch), old(old_batch)):
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def _text_model(items, seed):
  """With the text tower: text map and search tower, read only by the
  loss, are created before warm start (build_variables)."""
  tf.random.set_seed(seed)
  table = np.random.default_rng(seed).normal(
      size=(len(items) + 1, 6)).astype(np.float32)
  model = RecommenderModel(
      TrainerConfig(embedding_dim=4, hidden_units=4, history_length=2),
      num_users=2, num_occupations=2,
      item_probability=np.full(len(items) + 1, 1 / (len(items) + 1),
                               np.float32),
      text_table=table, search_query_tables=[table])
  model.build_variables(toy_batch())
  return model


def test_text_map_and_search_tower_carry_over(tmp_path):
  users, items = ["u1", "u2"], ["i1", "i2"]
  old = _text_model(items, seed=0)
  _export(old, users, items, str(tmp_path / "base"))
  new = _text_model(["i2", "i1", "i3"], seed=1)
  assert not np.array_equal(new.text_query_tower.out.kernel.numpy(),
                            old.text_query_tower.out.kernel.numpy())
  report = warm_start.warm_start(new, str(tmp_path / "base"), {
      features.USER_VOCAB: users, features.ITEM_VOCAB: ["i2", "i1", "i3"]})
  for layer in ("text_query_tower", "items"):
    assert not any(layer in path for path in report.fresh), report.fresh
  np.testing.assert_array_equal(new.text_query_tower.out.kernel.numpy(),
                                old.text_query_tower.out.kernel.numpy())
  np.testing.assert_array_equal(new.items.text_projection.kernel.numpy(),
                                old.items.text_projection.kernel.numpy())
  # i3 is new: its row starts where the carried text map puts its text
  # (what the old model served it as), not at random; i2's is carried.
  rows = new.items.id_embedding.embeddings.numpy()
  np.testing.assert_allclose(rows[2], new.items.text_projection(
      new.items.text_vectors()[2:3]).numpy()[0], atol=1e-6)
  np.testing.assert_array_equal(
      rows[0], old.items.id_embedding.embeddings.numpy()[1])


def test_a_base_of_another_design_trains_from_scratch(tmp_path):
  """Same shapes, other meaning: a base whose recorded design differs (or
  that records none) is not copied; the same design is."""
  items = ["i1", "i2"]
  vocabularies = {features.USER_VOCAB: ["u1", "u2"],
                  features.ITEM_VOCAB: items}
  old = _text_model(items, seed=0)
  base = str(tmp_path / "base")
  _export(old, ["u1", "u2"], items, base)
  new = _text_model(items, seed=1)
  design = new.config.design()
  before = [w.numpy().copy() for w in new.weights]
  assert warm_start.maybe_warm_start(new, base, vocabularies, design) is None
  warm_start.write_design(base, dict(design, item_text_for="every_item"))
  assert "item_text_for: 'every_item' -> 'new_items'" in (
      warm_start.design_change(base, design))
  assert warm_start.maybe_warm_start(new, base, vocabularies, design) is None
  for b, w in zip(before, new.weights):
    np.testing.assert_array_equal(b, w.numpy())
  warm_start.write_design(base, design)
  assert warm_start.design_change(base, design) is None
  assert warm_start.maybe_warm_start(new, base, vocabularies, design).copied


def test_no_or_unreadable_base_trains_from_scratch(tmp_path):
  model = _model(["u1"], ["i1"])
  before = [w.numpy().copy() for w in model.weights]
  vocabularies = {features.USER_VOCAB: ["u1"], features.ITEM_VOCAB: ["i1"]}
  assert warm_start.maybe_warm_start(model, None, vocabularies) is None
  broken = tmp_path / "broken"
  (broken / "variables").mkdir(parents=True)
  (broken / "variables" / "variables.index").write_bytes(b"not a checkpoint")
  assert warm_start.maybe_warm_start(model, str(broken), vocabularies) is None
  assert warm_start.maybe_warm_start(model, str(tmp_path / "missing"),
                                     vocabularies) is None
  for b, w in zip(before, model.weights):
    np.testing.assert_array_equal(b, w.numpy())


def test_warm_started_runs_use_their_own_learning_rate():
  config = TrainerConfig(learning_rate=0.01, warm_start_learning_rate=0.002)
  assert task.learning_rate(config, warm_started=False) == 0.01
  assert task.learning_rate(config, warm_started=True) == 0.002


def test_weight_averaging_forgets_the_start_in_short_runs():
  config = TrainerConfig(weight_averaging=0.98)
  long_run = task.make_optimizer(config, 400)
  assert long_run.use_ema and long_run.ema_momentum == 0.98
  short = task.make_optimizer(config, 120, warm_started=True)
  assert short.ema_momentum ** 120 == pytest.approx(0.02)
  assert not task.make_optimizer(
      TrainerConfig(weight_averaging=0.0), 400).use_ema
  with pytest.raises(ValueError, match="weight_averaging"):
    task.make_optimizer(TrainerConfig(weight_averaging=1.0), 10)
  # A warm-started run averages with its own momentum, capped the same way.
  config = TrainerConfig(weight_averaging=0.98,
                         warm_start_weight_averaging=0.9)
  assert task.make_optimizer(config, 120, warm_started=True
                             ).ema_momentum == pytest.approx(0.9)
  assert task.make_optimizer(config, 120).ema_momentum ** 120 == (
      pytest.approx(0.02))


def test_fit_ends_holding_the_averaged_weights():
  """What weight_averaging relies on: Keras' fit swaps the moving average
  into the model when it ends. A weight pulled towards 10 moves by about
  the learning rate per Adam step (0.1, 0.2, ... 0.8); with momentum 0.5
  its average ends at about 0.70."""
  def trained(averaging):
    layer = tf.keras.layers.Dense(1, use_bias=False,
                                  kernel_initializer="zeros")
    model = tf.keras.Sequential([tf.keras.Input([1]), layer])
    model.compile(optimizer=task.make_optimizer(TrainerConfig(
        weight_averaging=averaging, learning_rate=0.1), 8), loss="mse")
    x = np.ones([8, 1], np.float32)
    model.fit(tf.data.Dataset.from_tensors((x, 10 * x)).repeat(), epochs=1,
              steps_per_epoch=8, verbose=0)
    return float(layer.kernel.numpy()[0, 0])

  assert trained(0.0) == pytest.approx(0.8, abs=0.02)
  assert trained(0.5) == pytest.approx(0.70, abs=0.02)


def test_shrink_blends_the_base_with_a_fresh_start(tmp_path):
  items = ["i1", "i2"]
  vocabularies = {features.USER_VOCAB: ["u1", "u2"],
                  features.ITEM_VOCAB: items}
  old = _text_model(items, seed=0)
  _export(old, ["u1", "u2"], items, str(tmp_path / "base"))
  new = _text_model(items, seed=1)
  fresh = new.candidate_tower.out.kernel.numpy().copy()
  fresh_rows = new.items.id_embedding.embeddings.numpy().copy()
  warm_start.warm_start(new, str(tmp_path / "base"), vocabularies,
                        shrink=0.4)
  np.testing.assert_allclose(
      new.candidate_tower.out.kernel.numpy(),
      0.4 * old.candidate_tower.out.kernel.numpy() + 0.6 * fresh, atol=1e-6)
  np.testing.assert_allclose(
      new.items.id_embedding.embeddings.numpy(),
      0.4 * old.items.id_embedding.embeddings.numpy() + 0.6 * fresh_rows,
      atol=1e-6)
