"""Fine-tuning the top BERT blocks on the item side (text_finetune_layers)."""
import numpy as np
import pytest
import tensorflow as tf

from trainer import features
from trainer.catalog import Catalog
from trainer.config import TrainerConfig
from trainer.model import RecommenderModel
from trainer.text_tower import FineTunedTop
from trainer.text_tower import ItemTextEncoder
from trainer.text_tower import TextEncoder
from trainer.text_tower import lower_states

_xf = features.transformed_name
TEXTS = [b"Toy Story (1995). Animation, Children's, Comedy",
         b"Heat (1995). Action, Crime, Thriller", b"Casablanca (1942). Drama"]


@pytest.fixture(scope="module")
def encoder(text_encoder_dir):
  return TextEncoder(text_encoder_dir)


def test_split_encoder_starts_equal_to_the_frozen_one(encoder):
  frozen = encoder(tf.constant(TEXTS)).numpy()
  top = FineTunedTop(encoder.encoder, 2)
  np.testing.assert_allclose(ItemTextEncoder(encoder, top)(
      tf.constant(TEXTS)).numpy(), frozen, atol=1e-5)
  catalog = Catalog(
      raw={features.TITLE: tf.constant([[b"Toy Story"], [b"Heat"]]),
           features.YEAR: tf.constant([[1995], [1995]], tf.int64),
           features.GENRES: tf.constant([["Animation"], ["Action"]])},
      vocabulary=[])
  states, mask = catalog.fine_tuning_states(encoder, 2)
  assert states.shape[:2] == mask.shape and states.shape[2] == encoder.dim
  with pytest.raises(ValueError, match="1..6"):
    FineTunedTop(encoder.encoder, 7)


def _batch(n_items: int, batch: int = 8):
  rng = np.random.default_rng(0)
  items = rng.integers(0, n_items, batch)
  return {
      _xf(features.USER_ID): tf.constant(rng.integers(0, 5, batch)),
      _xf(features.GENDER): tf.zeros([batch], tf.int64),
      _xf(features.OCCUPATION): tf.zeros([batch], tf.int64),
      _xf(features.AGE): tf.zeros([batch]),
      _xf(features.HISTORY): tf.constant(rng.integers(-1, n_items, (batch, 4))),
      _xf(features.ITEM_ID): tf.constant(items),
      _xf(features.GENRES): tf.zeros([batch, len(features.GENRE_VOCAB)]),
      _xf(features.YEAR): tf.zeros([batch]),
      features.LABEL_KEY: tf.constant(rng.uniform(1, 5, batch), tf.float32),
  }


@pytest.mark.long
def test_training_moves_the_top_blocks_and_not_the_encoder(encoder):
  config = TrainerConfig(text_finetune_layers=1, embedding_dim=8,
                         hidden_units=8, history_length=3, learning_rate=0.01)
  states, mask = lower_states(encoder, TEXTS, skip_top=1)
  n_items = len(TEXTS) + 1  # + OOV
  pad = lambda a: np.concatenate([a, np.zeros_like(a[:1])])  # noqa: E731
  top = FineTunedTop(encoder.encoder, 1)
  model = RecommenderModel(
      config, num_users=5, num_occupations=1,
      item_probability=np.full(n_items, 1 / n_items, np.float32),
      fine_tuned_text=(pad(states), pad(mask), top))
  model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
  frozen_before = [w.numpy().copy() for w in encoder.encoder.weights]
  top_before = [w.numpy().copy() for w in top.weights]
  table_before = model.items.text_vectors().numpy()
  model.fit(tf.data.Dataset.from_tensors(_batch(n_items)).repeat(3),
            epochs=1, verbose=0)
  assert any(not np.allclose(b, w.numpy())
             for b, w in zip(top_before, top.weights))
  assert all(np.array_equal(b, w.numpy())
             for b, w in zip(frozen_before, encoder.encoder.weights))
  table_after = model.items.text_vectors().numpy()
  assert not np.allclose(table_before[:-1], table_after[:-1])
  # The exported item-side encoder follows the fine-tuned blocks.
  item_encoder = ItemTextEncoder(encoder, top)
  np.testing.assert_allclose(item_encoder(tf.constant(TEXTS)).numpy(),
                             table_after[:-1], atol=1e-5)
