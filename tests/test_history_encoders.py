"""The short-term history encoders: what they may and may not look at."""
import numpy as np
import pytest
import tensorflow as tf
from model_fixtures import toy_batch

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
