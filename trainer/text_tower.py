"""The frozen pretrained text encoder as one tf.Module: raw strings -> vectors.

Training never runs BERT per batch: each catalogue item's text vector is
computed once (`encode_catalog`) and looked up; only a small projection on top
is trained. The exported model still carries this module, so a brand-new item
(`embed_items`) or a free-text query (`search`) is encoded in-graph.
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


def encode_texts(encoder: TextEncoder, texts: Sequence[bytes],
                 batch_size: int = 128, label: str = "item texts") -> np.ndarray:
  """Encodes many strings in batches, logging progress; [N, dim] float32."""
  out, start = [], time.time()
  for i in range(0, len(texts), batch_size):
    out.append(encoder(tf.constant(list(texts[i:i + batch_size]))).numpy())
    done = min(i + batch_size, len(texts))
    if done == len(texts) or (i // batch_size) % 5 == 4:
      logging.info("text tower: encoded %d/%d %s (%.0f/s)", done,
                   len(texts), label, done / max(time.time() - start, 1e-9))
  if not out:
    return np.zeros([0, encoder.dim], np.float32)
  return np.concatenate(out, 0).astype(np.float32)
