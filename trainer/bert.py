"""A tf-keras port of all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384).

Built from small layers (embeddings, transformer block, mean pooling) as the
TF Model Garden does, and loaded from the original safetensors weights, so the
text tower starts from real pretrained knowledge. The sentence-transformers
pipeline is BERT -> mean over non-padding tokens -> L2 normalise; we follow it
exactly (exact GELU, LayerNorm eps 1e-12), and tests compare against vectors
produced by the original implementation.

Tensors: ids, mask [B, T] int -> vectors [B, 384] float32, unit length.
"""
import json
import os
from typing import Dict

import numpy as np
import tensorflow as tf

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.txt"


class BertEmbeddings(tf.keras.layers.Layer):

  def __init__(self, vocab_size: int, hidden: int, max_positions: int,
               type_vocab_size: int, eps: float, **kwargs):
    super().__init__(**kwargs)
    self.word = tf.keras.layers.Embedding(vocab_size, hidden, name="word")
    self.position = tf.keras.layers.Embedding(max_positions, hidden,
                                              name="position")
    self.token_type = tf.keras.layers.Embedding(type_vocab_size, hidden,
                                                name="token_type")
    self.norm = tf.keras.layers.LayerNormalization(epsilon=eps, name="norm")

  def call(self, ids):
    positions = tf.range(tf.shape(ids)[1])[tf.newaxis, :]
    x = self.word(ids) + self.position(positions) + self.token_type(
        tf.zeros_like(ids))
    return self.norm(x)


class TransformerBlock(tf.keras.layers.Layer):
  """Post-LayerNorm BERT block: self-attention, then the feed-forward net."""

  def __init__(self, hidden: int, heads: int, intermediate: int, eps: float,
               **kwargs):
    super().__init__(**kwargs)
    self.heads, self.head_dim = heads, hidden // heads
    dense = tf.keras.layers.Dense
    self.query, self.key, self.value = (dense(hidden, name=n)
                                        for n in ("query", "key", "value"))
    self.attention_out = dense(hidden, name="attention_out")
    self.attention_norm = tf.keras.layers.LayerNormalization(
        epsilon=eps, name="attention_norm")
    self.intermediate = dense(intermediate, name="intermediate")
    self.output_dense = dense(hidden, name="output_dense")
    self.output_norm = tf.keras.layers.LayerNormalization(
        epsilon=eps, name="output_norm")

  def _split(self, x):
    b, t = tf.shape(x)[0], tf.shape(x)[1]
    return tf.transpose(tf.reshape(x, [b, t, self.heads, self.head_dim]),
                        [0, 2, 1, 3])

  def call(self, x, mask):
    q, k, v = self._split(self.query(x)), self._split(self.key(x)), \
        self._split(self.value(x))
    scores = tf.matmul(q, k, transpose_b=True) / np.sqrt(self.head_dim)
    blocked = (1.0 - tf.cast(mask, scores.dtype))[:, tf.newaxis, tf.newaxis, :]
    weights = tf.nn.softmax(scores + blocked * -1e9, axis=-1)
    context = tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3])
    context = tf.reshape(context, tf.shape(x))
    h = self.attention_norm(x + self.attention_out(context))
    ff = self.output_dense(tf.nn.gelu(self.intermediate(h), approximate=False))
    return self.output_norm(h + ff)


def mean_pool(tokens: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
  """Mean of [B, T, H] over positions where mask [B, T] is 1."""
  m = tf.cast(mask, tokens.dtype)[..., tf.newaxis]
  return tf.reduce_sum(tokens * m, 1) / tf.maximum(tf.reduce_sum(m, 1), 1e-9)


class MiniLMEncoder(tf.keras.Model):
  """Sentence encoder: (ids, mask) -> unit vectors [B, hidden]."""

  def __init__(self, config: Dict):
    super().__init__(name="minilm")
    eps = config.get("layer_norm_eps", 1e-12)
    self.hidden_size = config["hidden_size"]
    self.embeddings = BertEmbeddings(
        config["vocab_size"], config["hidden_size"],
        config["max_position_embeddings"], config["type_vocab_size"], eps,
        name="embeddings")
    self.blocks = [TransformerBlock(config["hidden_size"],
                                    config["num_attention_heads"],
                                    config["intermediate_size"], eps,
                                    name=f"layer_{i}")
                   for i in range(config["num_hidden_layers"])]

  def call(self, inputs):
    ids, mask = inputs
    return pooled(self.lower(ids, mask), mask)

  def lower(self, ids, mask, skip_top: int = 0) -> tf.Tensor:
    """Token states [B, T, H] after all blocks but the top `skip_top`."""
    x = self.embeddings(ids)
    for block in self.blocks[:len(self.blocks) - skip_top]:
      x = block(x, mask)
    return x


def pooled(tokens: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
  """The sentence vector: mean over real tokens, L2-normalised."""
  return tf.math.l2_normalize(mean_pool(tokens, mask), axis=-1)


def copy_block(block: TransformerBlock, name: str) -> TransformerBlock:
  """A new block with the same shape and (pretrained) weights."""
  copy = TransformerBlock(block.heads * block.head_dim, block.heads,
                          block.intermediate.units,
                          block.attention_norm.epsilon, name=name)
  hidden = block.heads * block.head_dim
  copy(tf.zeros([1, 2, hidden]), tf.ones([1, 2], tf.int32))
  copy.set_weights(block.get_weights())
  return copy


def _assign_dense(layer, weights, prefix):
  # torch Linear stores [out, in]; Keras Dense wants [in, out].
  layer.set_weights([weights[prefix + ".weight"].T, weights[prefix + ".bias"]])


def _assign_norm(layer, weights, prefix):
  layer.set_weights([weights[prefix + ".weight"], weights[prefix + ".bias"]])


def load_encoder(model_dir: str) -> MiniLMEncoder:
  """Builds the encoder and loads the pretrained safetensors weights."""
  from safetensors.numpy import load_file
  with tf.io.gfile.GFile(os.path.join(model_dir, CONFIG_FILE)) as f:
    config = json.load(f)
  encoder = MiniLMEncoder(config)
  encoder((tf.zeros([1, 2], tf.int64), tf.ones([1, 2], tf.int32)))
  w = load_file(os.path.join(model_dir, WEIGHTS_FILE))
  emb = encoder.embeddings
  emb.word.set_weights([w["embeddings.word_embeddings.weight"]])
  emb.position.set_weights([w["embeddings.position_embeddings.weight"]])
  emb.token_type.set_weights([w["embeddings.token_type_embeddings.weight"]])
  _assign_norm(emb.norm, w, "embeddings.LayerNorm")
  for i, block in enumerate(encoder.blocks):
    p = f"encoder.layer.{i}."
    _assign_dense(block.query, w, p + "attention.self.query")
    _assign_dense(block.key, w, p + "attention.self.key")
    _assign_dense(block.value, w, p + "attention.self.value")
    _assign_dense(block.attention_out, w, p + "attention.output.dense")
    _assign_norm(block.attention_norm, w, p + "attention.output.LayerNorm")
    _assign_dense(block.intermediate, w, p + "intermediate.dense")
    _assign_dense(block.output_dense, w, p + "output.dense")
    _assign_norm(block.output_norm, w, p + "output.LayerNorm")
  return encoder
