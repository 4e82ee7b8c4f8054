"""Business rules at request time: which catalogue rows a request allows.

Every top-k signature of the exported model (trainer/export.py) takes the
same rules (contract.RULE_INPUTS); this module turns them into a [B, N + 1]
mask over the catalogue (the last column: the unknown-item row, never
allowed). How many of the allowed items a request gets, and from where (the
index or an exact scan), is RecommenderModule._pick's business.
"""
import numpy as np
import tensorflow as tf

from trainer import contract
from trainer import features


def _row_mask(columns: tf.Tensor, batch, width) -> tf.Tensor:
  """[B, E] column indices (each < width) -> [B, width] bool, True where
  some entry of the row points."""
  columns = tf.cast(columns, tf.int64)
  rows = tf.broadcast_to(tf.range(tf.cast(batch, tf.int64))[:, tf.newaxis],
                         tf.shape(columns, tf.int64))
  where = tf.reshape(tf.stack([rows, columns], axis=-1), [-1, 2])
  return tf.scatter_nd(where, tf.ones([tf.shape(where)[0]], tf.int32),
                       tf.cast(tf.stack([batch, width]), tf.int64)) > 0


def _multi_hot(genres: np.ndarray, vocab) -> np.ndarray:
  """[N, G] genre strings ("" pads) -> [N, len(vocab)] float32."""
  code = {g: i for i, g in enumerate(vocab)}
  out = np.zeros([len(genres), len(vocab)], np.float32)
  for row, names in enumerate(genres):
    for name in names:
      name = name.decode() if isinstance(name, bytes) else name
      if name in code:
        out[row, code[name]] = 1.0
  return out


class CatalogRules(tf.Module):
  """The catalogue's years and genres, and the rules' mask over them.

  Args:
    rows: item id -> catalogue row (N for unknown ids), shared with the
      exported module.
    item_years: [N] release years (0 unknown).
    item_genres: [N, G] genre strings ("" pads).
  """

  def __init__(self, rows: tf.lookup.StaticHashTable, item_years: np.ndarray,
               item_genres: np.ndarray):
    super().__init__()
    self.rows = rows
    self.item_years = tf.Variable(np.asarray(item_years, np.int64),
                                  trainable=False)
    vocab = list(features.GENRE_VOCAB)
    self.genre_codes = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(vocab), tf.range(len(vocab), dtype=tf.int64)), -1)
    self.item_genres = tf.Variable(_multi_hot(item_genres, vocab),
                                   trainable=False)
    self.unknown_genre_message = (
        f"Unknown genre in {contract.ALLOWED_GENRES} (allowed: "
        f"{', '.join(vocab)}); got:")

  def listed(self, item_ids, batch):
    """[B, N + 1] bool: the catalogue rows of each row's `item_ids` [B, E]
    (unknown ids and "" pads: the last column)."""
    n = tf.shape(self.item_years)[0]
    return _row_mask(self.rows.lookup(item_ids), batch, n + 1)

  def eligible(self, batch, exclude, allowed_genres, min_year, max_year):
    """[B, N + 1] bool: catalogue rows the rules allow (the last column,
    unknown ids, never). Unknown ids in `exclude` are ignored; an unknown
    genre is INVALID_ARGUMENT naming the allowed ones."""
    sizes = tf.stack([tf.shape(exclude)[0], tf.shape(allowed_genres)[0],
                      tf.shape(min_year)[0], tf.shape(max_year)[0]])
    tf.debugging.assert_equal(
        sizes, tf.fill([4], batch),
        message="Rule inputs (exclude_item_ids, allowed_genres, min_year, "
        "max_year) need one row per request row")
    banned = self.listed(exclude, batch)
    codes = self.genre_codes.lookup(allowed_genres)
    given = tf.not_equal(allowed_genres, "")
    check = tf.debugging.Assert(
        tf.reduce_all(~given | (codes >= 0)),
        [self.unknown_genre_message, tf.boolean_mask(
            allowed_genres, given & (codes < 0))], summarize=5)
    with tf.control_dependencies([check]):
      vocab = tf.shape(self.item_genres)[1]
      wanted = _row_mask(tf.where(codes >= 0, codes, tf.cast(vocab, tf.int64)),
                         batch, vocab + 1)[:, :-1]
    genre_ok = tf.matmul(tf.cast(wanted, tf.float32), self.item_genres,
                         transpose_b=True) > 0
    filtered = tf.reduce_any(given, axis=1, keepdims=True)
    years = self.item_years[tf.newaxis, :]
    low, high = min_year[:, tf.newaxis], max_year[:, tf.newaxis]
    ok = ((~filtered | genre_ok) & ((low <= 0) | (years >= low)) &
          ((high <= 0) | ((years <= high) & (years > 0))))
    return tf.concat([ok, tf.zeros([batch, 1], tf.bool)], 1) & ~banned
