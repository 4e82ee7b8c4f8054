"""The models someone would pick instead of ours, on the same data.

EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019)
and SASRec (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM
2018) are the strong simple references on MovieLens; popularity and the TFRS
tutorial model (in bench/quality.py) are the weak ones. Items are catalogue
rows 0..N-1 here, not Transform's vocabulary, so every peer scores the whole
catalogue the same way.
"""
from typing import Iterator, Tuple

import numpy as np
import tensorflow as tf

# EASE's closed form: the Trainer's item-item term uses it too.
from trainer.item_item import ease_weights  # noqa: F401


class SASRec(tf.keras.Model):
  """Causal self-attention over a user's last `max_len` items.

  As in the paper: item + learned position embeddings, `blocks` pre-norm
  Transformer blocks (causal multi-head attention, point-wise two-layer
  feed-forward, residuals, dropout), and the output at each position scored
  against the shared item embeddings. Trained to predict every next item of
  the sequence at once, with a full softmax over the catalogue (the
  cross-entropy variant, stronger than the paper's one-negative BCE on
  MovieLens) instead of sampled negatives.

  Sequences are [batch, max_len] catalogue rows, oldest first, right-aligned,
  padded with `num_items`.
  """

  def __init__(self, num_items: int, max_len: int = 50, dim: int = 64,
               blocks: int = 2, heads: int = 2, dropout: float = 0.2):
    super().__init__()
    self.num_items, self.max_len, self.dim = num_items, max_len, dim
    self.item_embedding = tf.keras.layers.Embedding(num_items + 1, dim)
    self.position_embedding = tf.keras.layers.Embedding(max_len, dim)
    self.dropout = tf.keras.layers.Dropout(dropout)
    self.blocks = []
    for _ in range(blocks):
      self.blocks.append((
          tf.keras.layers.LayerNormalization(epsilon=1e-6),
          tf.keras.layers.MultiHeadAttention(heads, dim // heads,
                                             dropout=dropout),
          tf.keras.layers.LayerNormalization(epsilon=1e-6),
          tf.keras.Sequential([
              tf.keras.layers.Dense(dim, activation="relu"),
              tf.keras.layers.Dropout(dropout),
              tf.keras.layers.Dense(dim)]),
      ))
    self.final_norm = tf.keras.layers.LayerNormalization(epsilon=1e-6)

  def call(self, sequence: tf.Tensor, training=False) -> tf.Tensor:
    """[B, L] rows -> [B, L, dim] states; position i sees items 0..i."""
    mask = sequence < self.num_items
    length = tf.shape(sequence)[1]
    x = (self.item_embedding(sequence) * self.dim ** 0.5 +
         self.position_embedding(tf.range(length))[tf.newaxis])
    keep = tf.cast(mask, x.dtype)[..., tf.newaxis]
    x = self.dropout(x, training=training) * keep
    causal = tf.cast(tf.linalg.band_part(tf.ones([length, length]), -1, 0),
                     tf.bool)
    attention_mask = causal[tf.newaxis] & mask[:, tf.newaxis, :]
    for norm1, attention, norm2, feed_forward in self.blocks:
      q = norm1(x)
      x = x + attention(q, x, attention_mask=attention_mask,
                        training=training)
      x = x + feed_forward(norm2(x), training=training)
      x = x * keep
    return self.final_norm(x)

  def logits(self, states: tf.Tensor) -> tf.Tensor:
    """[..., dim] -> [..., num_items] scores over the catalogue."""
    return tf.matmul(states, self.item_embedding.embeddings[:-1],
                     transpose_b=True)

  def train_step(self, data):
    sequence, target = data  # [B, L] history, [B] the next item
    inputs = sequence
    # Targets shift the sequence by one: each position predicts the item
    # after it, the last one predicts `target`.
    labels = tf.concat([sequence[:, 1:], target[:, tf.newaxis]], axis=1)
    valid = tf.cast((inputs < self.num_items) & (labels < self.num_items),
                    tf.float32)
    with tf.GradientTape() as tape:
      logits = self.logits(self(inputs, training=True))
      loss = tf.keras.losses.sparse_categorical_crossentropy(
          tf.minimum(labels, self.num_items - 1), logits, from_logits=True)
      loss = tf.reduce_sum(loss * valid) / tf.maximum(tf.reduce_sum(valid), 1)
    grads = tape.gradient(loss, self.trainable_variables)
    self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
    return {"loss": loss}

  def score(self, sequences: np.ndarray, batch: int = 2048) -> np.ndarray:
    """[n, L] histories -> [n, num_items] next-item scores."""
    out = []
    for i in range(0, len(sequences), batch):
      states = self(tf.constant(sequences[i:i + batch]), training=False)
      out.append(self.logits(states[:, -1]).numpy())
    return np.concatenate(out)


def sasrec_batches(sequences: np.ndarray, targets: np.ndarray,
                   batch_size: int, seed: int = 1
                   ) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
  """Shuffled (history, next item) batches, forever, for SASRec.fit."""
  return (tf.data.Dataset.from_tensor_slices((sequences, targets))
          .shuffle(len(targets), seed=seed).repeat()
          .batch(batch_size, drop_remainder=True).prefetch(2))


def right_aligned(histories, max_len: int, pad: int) -> np.ndarray:
  """Lists of rows (oldest first) -> [n, max_len], newest in the last
  column, left-padded with `pad`."""
  out = np.full((len(histories), max_len), pad, np.int32)
  for i, history in enumerate(histories):
    recent = history[-max_len:]
    if len(recent):
      out[i, max_len - len(recent):] = recent
  return out
