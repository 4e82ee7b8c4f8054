"""The multitask loss, computed by hand for a toy batch (TFRS-style).

Three interactions of two users over two items (+ the OOV row), item 0
twice so accidental-hit removal matters. The towers' outputs are taken from
the model; everything the loss does with them (temperature, logQ
correction, accidental hits, summed softmax cross-entropy, the rating MSE and
the task weights) is recomputed here in NumPy, so a change to any of it
fails in seconds instead of in the pipeline test.
"""
import numpy as np
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
