"""The frozen pretrained text encoder as one tf.Module: raw strings -> vectors.

Training never runs BERT per batch by default: each catalogue item's text
vector is computed once and looked up; only a small projection on top is
trained. The exported model still carries this module, so a brand-new item
(`embed_items`) or a free-text query (`search`) is encoded in-graph.

With `text_finetune_layers` = n > 0 (meant for a GPU), the item side
fine-tunes trainable copies of the top n blocks (`FineTunedTop`): the lower
blocks' token states of each catalogue item are computed once
(`lower_states`) and the top n blocks run over the catalogue every step. The
query side (search) keeps the frozen encoder it was trained against.
"""
import os
import time
from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from trainer import bert
from trainer import text


class TextEncoder(tf.Module):
  """Tokenizer + MiniLM, frozen. [B] strings -> [B, 384] unit vectors."""

  def __init__(self, model_dir: str, max_length: int = text.DEFAULT_MAX_LENGTH):
    super().__init__()
    self.tokenizer = text.Tokenizer(
        text.read_vocab(os.path.join(model_dir, bert.VOCAB_FILE)), max_length)
    self.encoder = bert.load_encoder(model_dir)
    self.encoder.trainable = False
    self.dim = self.encoder.hidden_size

  def __call__(self, strings: tf.Tensor) -> tf.Tensor:
    return self.encoder(self.tokenizer(strings))


class FineTunedTop(tf.keras.layers.Layer):
  """Trainable copies of the encoder's top `n` blocks, started from the
  pretrained weights: lower-block token states -> unit text vectors."""

  def __init__(self, encoder: bert.MiniLMEncoder, n: int, **kwargs):
    super().__init__(**kwargs)
    if not 0 < n <= len(encoder.blocks):
      raise ValueError(f"text_finetune_layers must be 1..{len(encoder.blocks)}"
                       f", got {n}")
    self.n = n
    self.blocks = [bert.copy_block(b, f"finetuned_{i}")
                   for i, b in enumerate(encoder.blocks[-n:])]

  def call(self, states, mask):
    for block in self.blocks:
      states = block(states, mask)
    return bert.pooled(states, mask)


class ItemTextEncoder(tf.Module):
  """Raw item text -> vectors through the frozen lower blocks and the
  fine-tuned top: what `embed_items` exports when fine-tuning is on."""

  def __init__(self, text_encoder: TextEncoder, top: FineTunedTop):
    super().__init__()
    self.text_encoder, self.top = text_encoder, top
    self.dim = text_encoder.dim

  def __call__(self, strings: tf.Tensor) -> tf.Tensor:
    ids, mask = self.text_encoder.tokenizer(strings)
    states = self.text_encoder.encoder.lower(ids, mask, self.top.n)
    return self.top(states, mask)


def lower_states(encoder: TextEncoder, texts: Sequence[bytes], skip_top: int,
                 batch_size: int = 128):
  """Token states below the top `skip_top` blocks, once per text:
  ([N, T, H] float32, [N, T] int32 mask)."""
  states, masks = [], []
  for i in range(0, len(texts), batch_size):
    ids, mask = encoder.tokenizer(tf.constant(list(texts[i:i + batch_size])))
    states.append(encoder.encoder.lower(ids, mask, skip_top).numpy())
    masks.append(mask.numpy())
  logging.info("text tower: lower-block states of %d item texts", len(texts))
  return np.concatenate(states), np.concatenate(masks)


def encode_texts(encoder: TextEncoder, texts: Sequence[bytes],
                 batch_size: int = 128, label: str = "item texts"
                 ) -> np.ndarray:
  """Encodes many strings in batches, logging progress; [N, dim] float32.

  Each distinct string is encoded once (a catalogue repeats its genre
  lists), in batches of similar length cut to their longest: padding is
  masked out of attention and pooling, so it only costs time, and titles
  are a third of the 32 positions."""
  unique, inverse = np.unique(np.array(list(texts), dtype=object),
                              return_inverse=True)
  if not len(unique):
    return np.zeros([0, encoder.dim], np.float32)
  ids, mask = encoder.tokenizer(tf.constant(list(unique)))
  lengths = mask.numpy().sum(1)
  order = np.argsort(lengths, kind="stable")
  out, start = np.zeros([len(unique), encoder.dim], np.float32), time.time()
  for i in range(0, len(order), batch_size):
    rows = order[i:i + batch_size]
    width = int(lengths[rows].max())
    out[rows] = encoder.encoder((tf.gather(ids, rows)[:, :width],
                                 tf.gather(mask, rows)[:, :width])).numpy()
    done = min(i + batch_size, len(order))
    if done == len(order) or (i // batch_size) % 5 == 4:
      logging.info("text tower: encoded %d/%d distinct %s (%.0f/s)", done,
                   len(order), label, done / max(time.time() - start, 1e-9))
  return out[inverse.reshape(-1)]
