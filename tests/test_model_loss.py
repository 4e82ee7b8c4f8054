"""The multitask loss, computed by hand for a toy batch (TFRS-style).

Three interactions of two users over two items (+ the OOV row), item 0
twice so accidental-hit removal matters. The towers' outputs are taken from
the model; everything the loss does with them (temperature, logQ
correction, accidental hits, summed softmax cross-entropy, the rating MSE and
the task weights) is recomputed here in NumPy, so a change to any of it
fails in seconds instead of in the pipeline test.
"""
import numpy as np
import pytest
import tensorflow as tf
from model_fixtures import toy_batch

from trainer import features
from trainer.config import TrainerConfig
from trainer.model import RecommenderModel

_xf = features.transformed_name


def _hand_loss(query, candidate, rating, labels, items, probability, config):
  logits = query @ candidate.T / config.temperature
  logits = logits - config.sampling_correction * np.log(
      probability[items])[None, :]
  for i in range(len(items)):
    for j in range(len(items)):
      if i != j and items[i] == items[j]:
        logits[i, j] += np.finfo(np.float32).min / 100  # accidental hit
  log_norm = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + \
      logits.max(1)
  retrieval = np.sum(log_norm - np.diag(logits))
  ranking = np.sum((labels - rating) ** 2) / len(labels)
  return config.retrieval_weight * retrieval + config.ranking_weight * ranking


def test_multitask_loss_matches_the_hand_computation():
  tf.random.set_seed(0)
  config = TrainerConfig(use_text=False, embedding_dim=4, hidden_units=4,
                         history_length=2, temperature=0.5,
                         retrieval_weight=1.0, ranking_weight=0.5)
  probability = np.array([0.5, 0.3, 0.2], np.float32)  # 2 items + OOV
  model = RecommenderModel(config, num_users=2, num_occupations=2,
                           item_probability=probability)
  batch = toy_batch()
  query, candidate, rating = (t.numpy().astype(np.float64)
                              for t in model(batch))
  expected = _hand_loss(query, candidate, rating,
                        batch[features.LABEL_KEY].numpy(),
                        batch[_xf(features.ITEM_ID)].numpy(), probability,
                        config)
  loss = float(model.compute_loss(batch, training=False))
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  # Each part counts: dropping the rating weight changes the loss by exactly
  # the rating term.
  config.ranking_weight = 0.0
  ranking_free = float(model.compute_loss(batch, training=False))
  rating_term = np.sum((batch[features.LABEL_KEY].numpy() - rating) ** 2) / 3
  np.testing.assert_allclose(loss - ranking_free, 0.5 * rating_term,
                             rtol=1e-4)


def _trained_on_toy_batch(use_text: bool, history_id_dropout: float):
  """A model trained 6 steps on the toy batch from seed 0: the same config
  but for the text tower."""
  from trainer import task
  tf.keras.utils.set_random_seed(0)
  config = TrainerConfig(use_text=use_text, embedding_dim=4, hidden_units=4,
                         history_length=2, item_id_dropout=0.5,
                         history_id_dropout=history_id_dropout,
                         search_queries="item_text")
  text = np.random.RandomState(1).normal(size=(3, 8)).astype(np.float32)
  text[-1] = 0.0  # the OOV row
  model = RecommenderModel(
      config, num_users=2, num_occupations=2,
      item_probability=np.array([0.5, 0.3, 0.2], np.float32),
      text_table=text if use_text else None,
      search_query_tables=(text,) if use_text else ())
  batch = toy_batch()
  model.build_variables(batch)
  model.compile(optimizer=task.make_optimizer(config, 6))
  model.fit(tf.data.Dataset.from_tensors(batch).repeat(), epochs=1,
            steps_per_epoch=6, verbose=0)
  query, candidate, _ = model(batch)
  return query.numpy(), candidate.numpy()


@pytest.mark.long
def test_text_leaves_users_and_known_items_alone_without_history_dropout():
  """item_text_for="new_items": the text tower only places items without
  an id row, and every gradient it sends stops before the id rows and the
  towers. So without history id dropout (which reads hidden history items
  from their text) the full model is the no-text model on every user and
  every known item, weight for weight, and the two can differ only in
  where they put new items (bench-placement --no-text shows it on
  MovieLens: the share-0 row at scale 1 is no_text's to the digit)."""
  full_query, full_items = _trained_on_toy_batch(True, 0.0)
  plain_query, plain_items = _trained_on_toy_batch(False, 0.0)
  np.testing.assert_array_equal(full_query, plain_query)
  np.testing.assert_array_equal(full_items, plain_items)
  # With it, hidden history items are read from text: the users move.
  dropout_query, _ = _trained_on_toy_batch(True, 0.5)
  plain_dropout_query, _ = _trained_on_toy_batch(False, 0.5)
  assert np.abs(dropout_query - plain_dropout_query).max() > 1e-4
