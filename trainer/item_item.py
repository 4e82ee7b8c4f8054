"""The item-item term of retrieval: EASE's closed form over a user's
recency-weighted history.

Why it is there: on ML-100K, EASE (Steck 2019) fed only the user's recent
items, each weighted `decay ** (how many items newer it is)`, matches the
two-tower model's recall@10 on its own (bench-quality's `ease_recency` peer),
and the sum of the two beats either: in an ad hoc check on the validation
window (2026-12-05), recall@10 0.218 against 0.196 for the towers alone and
0.187 for the term alone. bench-quality's run at e2d2bfa, choosing the
weight on validation, confirmed it: on the eval period recall@10 0.2051
for the full model against 0.1805 without the term (`full_no_item_item`)
and 0.1864 for the term alone (`ease_recency`). The towers generalise
(new users, new items, text, profile); the item-item matrix remembers
which films are watched after which, which the 64-dimensional towers
blur.

Serving (export.RecommenderModule): the index's top `item_item_depth` items
by cosine are re-scored as cosine + weight x this term, before the ranking
stage. Up to Pruning.dense_items (10,000) items the matrix is dense [N, N]
(at 10,000 the inverse is 0.8 GB in float64 and the exported variable
0.4 GB). Above, each row keeps its `row_entries` strongest entries
(PrunedRows: [N, k] columns and values, 0.16 GB at 100,000 items and
k = 200), and above MAX_ITEMS EASE is fit over the MAX_ITEMS most-rated
items only (its inverse is cubic in the items); the rest, rarely rated,
score 0 in the term, as new items do. The dense term costs a request
N x N multiply-adds, the pruned one (history length) x k: on 2 cores,
batch 1, 13 ms against 0.5 ms at 10,000 items (bench-item-item).
"""
from typing import Dict, Iterable, NamedTuple, Optional, Sequence, Union

import numpy as np
import scipy.sparse as sp
import tensorflow as tf
from absl import logging

from trainer import features

# The most items EASE is fit over (the most rated: its inverse is cubic in
# the items, 0.8 GB in float64 at 10,000), and the largest catalogue that
# keeps the dense matrix by default (Pruning.dense_items).
MAX_ITEMS = 10000
# Entries each row keeps when pruned (TrainerConfig.item_item_row_entries).
ROW_ENTRIES = 200


class Pruning(NamedTuple):
  """When the matrix is pruned (a catalogue above `dense_items` items, or
  above MAX_ITEMS) and to how many entries per row
  (TrainerConfig.item_item_dense_items, item_item_row_entries)."""
  dense_items: int = MAX_ITEMS
  row_entries: int = ROW_ENTRIES


def pruning(config) -> Pruning:
  """A TrainerConfig's Pruning."""
  return Pruning(config.item_item_dense_items, config.item_item_row_entries)


class PrunedRows(NamedTuple):
  """EASE's matrix pruned (Pruning): row r's strongest entries, `columns`
  [N, k] (ascending; N pads a row with fewer) and `values` [N, k] (0 at
  the pads). In-graph (ServedMatrix) the term gathers the history's rows
  and a pair's entry is a binary search in its row."""
  columns: np.ndarray
  values: np.ndarray

  def csr(self) -> sp.csr_matrix:
    """The [N, N] matrix the rows hold (pads left out)."""
    n = len(self.columns)
    rows, slots = np.nonzero(self.columns < n)
    return sp.csr_matrix(
        (self.values[rows, slots], (rows, self.columns[rows, slots])),
        shape=(n, n))


Matrix = Union[np.ndarray, PrunedRows]


def _operand(matrix: Matrix):
  """`matrix` as numpy and scipy multiply and index it: PrunedRows as
  its csr, a dense one as it is."""
  return matrix.csr() if isinstance(matrix, PrunedRows) else matrix


def prune_rows(matrix: np.ndarray, k: int, rows: np.ndarray = None,
               num_items: int = None) -> PrunedRows:
  """Each row's `k` entries of largest magnitude (EASE's negative entries
  push items down as its positive ones pull them up). `matrix` is over
  `rows` (catalogue rows, all N by default) of a `num_items` catalogue;
  catalogue rows it does not cover keep nothing.

  What pruning costs on ML-100K (2026-12-05, ease_recency, L2 800, decay
  0.85; the dense matrix keeps 1,682 per row): eval recall@10 0.1881 dense,
  0.1838 at 200, 0.1815 at 100, 0.1705 at 25; recall@100 0.6008, 0.5961,
  0.5871, 0.5475. Keeping the largest positive entries instead was no
  better (0.1818 at 200)."""
  matrix = np.asarray(matrix, np.float32)
  n = len(matrix) if num_items is None else int(num_items)
  rows = np.arange(len(matrix)) if rows is None else np.asarray(rows)
  # A matrix narrower than k keeps all it has and pads the rest, so that
  # new items borrowing into the rows (_borrow_into_rows) have k slots.
  k = max(1, int(k))
  held = min(k, matrix.shape[1])
  columns = np.full([n, k], n, np.int32)
  out = np.zeros([n, k], np.float32)
  for start in range(0, len(matrix), 1024):  # argpartition's [rows, N] int64
    part = matrix[start:start + 1024]
    kept = np.sort(np.argpartition(-np.abs(part), held - 1, axis=1)
                   [:, :held], 1)
    block = rows[start:start + 1024]
    # the matrix's columns are over `rows` too
    columns[block, :held] = rows[kept]
    out[block, :held] = np.take_along_axis(part, kept, 1)
  return PrunedRows(columns, out)


def ease_weights(interactions, l2: float) -> np.ndarray:
  """EASE's item-item matrix B [N, N], in closed form.

  B minimises ||X - XB||^2 + l2 ||B||^2 subject to diag(B) = 0: with
  P = (X'X + l2 I)^-1, B = I - P diag(1 / diag(P)). A user's scores are
  their row of X times B.

  Args:
    interactions: [users, items] 0/1 (dense or scipy sparse) of the
      training data.
    l2: L2 strength (Steck's lambda); chosen on a validation window.
  """
  if sp.issparse(interactions):
    gram = np.asarray((interactions.T @ interactions).todense(), np.float64)
  else:
    x = np.asarray(interactions, np.float64)
    gram = x.T @ x
  gram[np.diag_indices_from(gram)] += l2
  inverse = np.linalg.inv(gram)
  weights = -inverse / np.diag(inverse)[np.newaxis, :]
  weights[np.diag_indices_from(weights)] = 0.0
  return weights.astype(np.float32)


def user_item_matrix(users: Sequence, items: np.ndarray,
                     num_items: int) -> sp.csr_matrix:
  """[distinct users, num_items] 1 where the user rated the item (catalogue
  rows; rows < 0, items outside the catalogue, are left out)."""
  items = np.asarray(items)
  keep = items >= 0
  _, user_rows = np.unique(np.asarray(users)[keep], return_inverse=True)
  matrix = sp.csr_matrix(
      (np.ones(int(keep.sum()), np.float32), (user_rows, items[keep])),
      shape=(int(user_rows.max(initial=-1)) + 1, num_items))
  matrix.data[:] = 1.0  # a user who rated an item twice counts once
  return matrix


def history_weights(rows: np.ndarray, decay: float) -> np.ndarray:
  """[H] weights of a history's entries (oldest first): decay ** (how many
  entries are newer), 0 where the row is < 0 (an item the catalogue does
  not hold: it still counts as newer, as in the exported model)."""
  rows = np.asarray(rows)
  age = np.arange(len(rows))[::-1]
  return np.where(rows >= 0, decay ** age.astype(np.float64), 0.0)


def query_rows(histories: Iterable[np.ndarray], num_items: int,
               decay: float) -> sp.csr_matrix:
  """[len(histories), num_items]: each history's weighted rows, the term's
  input (what export.RecommenderModule builds in-graph)."""
  rows, cols, values = [], [], []
  for i, history in enumerate(histories):
    history = np.asarray(history)
    weights = history_weights(history, decay)
    keep = weights > 0
    rows.extend([i] * int(keep.sum()))
    cols.extend(history[keep].tolist())
    values.extend(weights[keep].tolist())
  return sp.csr_matrix((np.asarray(values, np.float32), (rows, cols)),
                       shape=(len(histories), num_items))


def scores(matrix: Matrix, histories: Iterable[np.ndarray],
           decay: float) -> np.ndarray:
  """[n, N] the term for each history (catalogue rows, oldest first)."""
  matrix = _operand(matrix)
  product = query_rows(list(histories), matrix.shape[0], decay) @ matrix
  return product.toarray() if sp.issparse(product) else np.asarray(product)


def validation_term(config, train, queries, num_items: int,
                    text_vectors: Optional[np.ndarray] = None):
  """[n, N] config.item_item_weight x the term for `queries`' histories,
  EASE fit on `train` (validation.Interactions both), or 0.0 with the term
  off: what the exported model adds to the cosine, for bench-quality's
  validation scores (the Tuner builds the same from matrices it has fit
  for its grid). Over the whole catalogue, where the
  model re-scores its index's top item_item_depth only (on ML-100K's
  validation window the top 300 scored as the whole catalogue did).
  `text_vectors` [N, d], the catalogue's: new items borrow as
  config.item_item_new_items says (see trained_matrix)."""
  if not config.item_item_weight:
    return 0.0
  return config.item_item_weight * recency_scores(
      train, queries, num_items, config.item_item_l2, config.item_item_decay,
      *new_item_borrowing(config, text_vectors), pruning(config))


class Borrowing(NamedTuple):
  """What new items borrow (borrow_for_new_items), in trained_matrix's,
  fit's and remap's argument order."""
  text_vectors: Optional[np.ndarray]
  neighbours: int
  share: float


def new_item_borrowing(config, text_vectors: Optional[np.ndarray]
                       ) -> Borrowing:
  """A TrainerConfig's Borrowing: with the text tower only (a model
  without it is not to read text)."""
  if not config.use_text or text_vectors is None:
    return Borrowing(None, 0, 0.0)
  return Borrowing(text_vectors, config.item_item_neighbours,
                   config.item_item_new_items)


def recency_scores(train, queries, num_items: int, l2: float, decay: float,
                   text_vectors: Optional[np.ndarray] = None,
                   neighbours: int = 0, share: float = 0.0,
                   pruned: Pruning = Pruning()) -> np.ndarray:
  """[n, N] the term (weight 1) for `queries`' histories, EASE fit on
  `train` (validation.Interactions both): bench-quality's ease_recency
  (no text: no borrowing)."""
  matrix = trained_matrix(train.users, train.items, num_items, l2,
                          text_vectors, neighbours, share, pruned)
  return scores(matrix, queries.histories, decay)


def trained_matrix(users: Sequence, items: np.ndarray, num_items: int,
                   l2: float, text_vectors: Optional[np.ndarray] = None,
                   neighbours: int = 0, share: float = 0.0,
                   pruned: Pruning = Pruning()) -> Matrix:
  """EASE's [N, N] from training (user, catalogue row) pairs; with
  `text_vectors` and a `share`, items no pair holds borrow their text
  neighbours' rows and columns (borrow_for_new_items). Above
  `pruned.dense_items` (or MAX_ITEMS) items, PrunedRows: EASE over the
  MAX_ITEMS most-rated items (ties to the lower row), each row's
  `pruned.row_entries` strongest entries (new items borrow from the rows
  that hold entries, and keep as many)."""
  items = np.asarray(items)
  counts = np.bincount(items[items >= 0], minlength=num_items)
  if num_items > min(pruned.dense_items, MAX_ITEMS):
    matrix = _most_rated_rows(users, items, counts, l2, pruned.row_entries)
  else:
    matrix = ease_weights(user_item_matrix(users, items, num_items), l2)
  if text_vectors is None or not share:
    return matrix
  return borrow_for_new_items(matrix, text_vectors, counts == 0, neighbours,
                              share)


def _most_rated_rows(users: Sequence, items: np.ndarray, counts: np.ndarray,
                     l2: float, row_entries: int) -> PrunedRows:
  """trained_matrix's PrunedRows (see there), before any borrowing."""
  num_items = len(counts)
  rated = np.flatnonzero(counts)
  fitted = np.sort(rated[np.argsort(-counts[rated], kind="stable")
                         [:MAX_ITEMS]])
  if not len(fitted):  # nothing rated: every row a pad
    return PrunedRows(np.full([num_items, 1], num_items, np.int32),
                      np.zeros([num_items, 1], np.float32))
  logging.info("item-item term: EASE over the %d most-rated of %d items, "
               "%d entries per row", len(fitted), num_items, row_entries)
  position = np.full(num_items + 1, -1, np.int64)  # row -1 stays -1
  position[fitted] = np.arange(len(fitted))
  matrix = ease_weights(user_item_matrix(
      users, position[items], len(fitted)), l2)
  return prune_rows(matrix, row_entries, fitted, num_items)


def read_pairs(files: Sequence[str], row_of: Dict[str, int]):
  """(users [n], catalogue rows [n]) of the interaction examples in
  `files` (ExampleGen's gzipped tf.Examples); items outside the catalogue
  are -1."""
  spec = {features.USER_ID: tf.io.FixedLenFeature([1], tf.string),
          features.ITEM_ID: tf.io.FixedLenFeature([1], tf.string)}
  users, items = [], []
  for batch in tf.data.TFRecordDataset(list(files), "GZIP").batch(65536):
    parsed = tf.io.parse_example(batch, spec)
    users.append(parsed[features.USER_ID].numpy().reshape(-1))
    items.extend(row_of.get(i.decode(), -1) for i in
                 parsed[features.ITEM_ID].numpy().reshape(-1))
  return (np.concatenate(users) if users else np.array([], object),
          np.asarray(items, np.int64))


def fit(files: Sequence[str], item_ids: np.ndarray, l2: float,
        text_vectors: Optional[np.ndarray] = None, neighbours: int = 0,
        share: float = 0.0, pruned: Pruning = Pruning()) -> Matrix:
  """EASE's matrix over catalogue rows from the training examples, as
  trained_matrix builds it (dense, new items borrowing; or PrunedRows)."""
  row_of = {(i.decode() if isinstance(i, bytes) else i): r
            for r, i in enumerate(item_ids)}
  users, items = read_pairs(files, row_of)
  return trained_matrix(users, items, len(item_ids), l2, text_vectors,
                        neighbours, share, pruned)


def borrow_for_new_items(matrix: Matrix, text_vectors: np.ndarray,
                         new: np.ndarray, neighbours: int,
                         share: float = 1.0) -> Matrix:
  """`matrix` with each new item's row and column (all 0: nobody rated it
  in training) `share` x the mean of its `neighbours` nearest rated items'
  rows and columns, nearest and weighted by the cosine of their catalogue
  texts (negative cosines weigh 0). PrunedRows lend from the rows that
  hold entries (above MAX_ITEMS, the rarely rated hold none) and each row
  then keeps its k strongest entries again, borrowed ones competing with
  the rest (_borrow_into_rows).

  Why: EASE knows only items someone rated, so without this every new item
  scores 0 in the term while a rated item beside it scores up to several
  times its cosine lead, and new items fall out of users' lists (cold-item
  recall@100 0.413 without the term, 0.333 with it, in bench-quality's run
  at e2d2bfa). A new film is watched after what its nearest films are
  watched after: the same reasoning as the text tower's, in the term.
  Off by default (TrainerConfig.item_item_new_items): it is a trade, new
  items' recall against warm items'. On ML-100K's validation window
  (one model, 2026-12-05) 5 neighbours at share 0.5 took new items'
  recall@100 from 0.432 to 0.563 (213 interactions) at recall@10 +0.0001,
  recall@50 -0.0015, recall@100 +0.0002; share 1 to 0.685 at recall@50
  -0.0027 and recall@100 -0.0024. Over five seeds (bench-seeds'
  full_new_items, 2026-12-05): new items' recall@100 0.392 -> 0.522 on
  validation and 0.335 -> 0.381 on eval in 5 of 5 seeds, recall@10 level,
  validation recall@50 -0.0010 (5 of 5 seeds behind).

  Args:
    matrix: [N, N] EASE's matrix over catalogue rows, or its PrunedRows.
    text_vectors: [N, d] the catalogue's text vectors (the frozen encoder's).
    new: [N] bool, the items nobody rated in training.
    neighbours: how many rated items each new one borrows from.
    share: what a new item gets of their mean; 0 leaves `matrix` as it is.
  """
  new = np.asarray(new, bool)
  lenders = ~new
  if isinstance(matrix, PrunedRows):
    lenders &= (matrix.columns < len(new)).any(axis=1)
  if not share or not new.any() or not lenders.any():
    return matrix
  borrow = _text_neighbour_weights(text_vectors, new, lenders, neighbours)
  if isinstance(matrix, PrunedRows):
    return _borrow_into_rows(matrix, borrow, new, share)
  borrow = borrow.toarray()
  out = np.array(matrix, np.float32)
  base = np.asarray(matrix, np.float64)
  out[:, new] = (share * base @ borrow.T).astype(np.float32)
  out[new, :] = (share * borrow @ base).astype(np.float32)
  out[np.ix_(new, new)] = 0.0  # two new items: neither was rated
  return out


def _text_neighbour_weights(text_vectors: np.ndarray, new: np.ndarray,
                            lenders: np.ndarray, neighbours: int
                            ) -> sp.csr_matrix:
  """[new items, N]: each new item's `neighbours` nearest `lenders` by the
  cosine of their texts, weighted by it (negative cosines weigh 0), each
  row summing to 1 (or 0 where every cosine is negative)."""
  lent = np.flatnonzero(lenders)
  k = min(int(neighbours), len(lent))
  unit = text_vectors / np.maximum(
      np.linalg.norm(text_vectors, axis=1, keepdims=True), 1e-12)
  cosine = unit[new] @ unit[lent].T  # [new, lenders]
  nearest = np.argpartition(-cosine, k - 1, axis=1)[:, :k]
  weights = np.maximum(np.take_along_axis(cosine, nearest, 1), 0.0)
  weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
  rows = np.repeat(np.arange(len(nearest)), k)
  return sp.csr_matrix(
      (weights.astype(np.float64).ravel(), (rows, lent[nearest].ravel())),
      shape=(len(nearest), len(new)))


def _borrow_into_rows(matrix: PrunedRows, borrow: sp.csr_matrix,
                      new: np.ndarray, share: float) -> PrunedRows:
  """borrow_for_new_items on PrunedRows: a new item's row is `share` x its
  lenders' rows mixed by `borrow` [new items, N], and every row gains
  `share` x its entries at the lenders, mixed the same way, at the new
  item's column; then each row keeps its k strongest entries, as pruning
  chose them. (Nobody rated a new item, so its row and column were empty:
  two new items still score nothing together.) Synthetic 50,000 items
  with 200 entries per row, 2,000 of them new: 18 s and 2.2 GB at peak on
  2 cores beside a benchmark (2026-12-05), next to EASE's 30 s fit."""
  base = matrix.csr().astype(np.float64)
  count = int(new.sum())
  into_new = sp.csr_matrix(  # [N, new items]: 1 at (new item j's row, j)
      (np.ones(count), (np.flatnonzero(new), np.arange(count))),
      shape=(len(new), count))
  grown = (base + share * (into_new @ (borrow @ base))
           + share * ((base @ borrow.T) @ into_new.T))
  return _strongest_in_rows(grown.tocsr(), matrix.columns.shape[1])


def _strongest_in_rows(matrix: sp.csr_matrix, k: int) -> PrunedRows:
  """PrunedRows of a sparse [N, N]: each row's `k` entries of largest
  magnitude (ties to the lower column), columns ascending, pads N."""
  n = matrix.shape[0]
  matrix = matrix.tocoo()
  keep = matrix.data != 0
  rows, cols, vals = matrix.row[keep], matrix.col[keep], matrix.data[keep]
  order = np.lexsort((cols, -np.abs(vals), rows))
  rows, cols, vals = rows[order], cols[order], vals[order]
  starts = np.searchsorted(rows, np.arange(n))
  rank = np.arange(len(rows)) - starts[rows]
  keep = rank < k
  rows, cols, vals = rows[keep], cols[keep], vals[keep]
  order = np.lexsort((cols, rows))
  rows, cols, vals = rows[order], cols[order], vals[order]
  slot = np.arange(len(rows)) - np.searchsorted(rows, np.arange(n))[rows]
  columns = np.full([n, k], n, np.int32)
  values = np.zeros([n, k], np.float32)
  columns[rows, slot] = cols
  values[rows, slot] = vals
  return PrunedRows(columns, values)


def remap(matrix: Matrix, old_ids: np.ndarray, new_ids: np.ndarray,
          text_vectors: Optional[np.ndarray] = None, neighbours: int = 0,
          share: float = 0.0) -> Matrix:
  """The [N', N'] matrix over `new_ids` (a refreshed catalogue): pairs of
  items both catalogues hold keep their value; new items get 0 (nobody
  rated them in training: only the towers place them) or, with
  `text_vectors` [N', d] and a `share`, borrow from their text neighbours
  among the known ones (borrow_for_new_items)."""
  decode = lambda i: i.decode() if isinstance(i, bytes) else i  # noqa: E731
  old_row = {decode(i): r for r, i in enumerate(old_ids)}
  rows = np.array([old_row.get(decode(i), -1) for i in new_ids], np.int64)
  known = rows >= 0
  if isinstance(matrix, PrunedRows):
    out = _remap_rows(matrix, rows)
  else:
    out = np.zeros([len(new_ids), len(new_ids)], np.float32)
    out[np.ix_(known, known)] = matrix[np.ix_(rows[known], rows[known])]
  if text_vectors is None or not share:
    return out
  return borrow_for_new_items(out, text_vectors, ~known, neighbours, share)


def _remap_rows(matrix: PrunedRows, rows: np.ndarray) -> PrunedRows:
  """remap for PrunedRows: `rows` [N'] is each new item's old row (-1 new);
  entries at items the new catalogue lacks become pads."""
  n_old, n = len(matrix.columns), len(rows)
  known = rows >= 0
  new_row = np.full(n_old + 1, n, np.int32)  # old pads and dropped items
  new_row[rows[known]] = np.flatnonzero(known)
  columns = np.full([n, matrix.columns.shape[1]], n, np.int32)
  values = np.zeros(columns.shape, np.float32)
  columns[known] = new_row[matrix.columns[rows[known]]]
  values[known] = np.where(columns[known] < n, matrix.values[rows[known]], 0)
  order = np.argsort(columns, axis=1, kind="stable")  # ascending again
  return PrunedRows(np.take_along_axis(columns, order, 1),
                    np.take_along_axis(values, order, 1))


class ServedMatrix(tf.Module):
  """The matrix inside an exported model (export.RecommenderModule), with
  row and column N, the unknown id's, all 0: dense [N + 1, N + 1], or
  PrunedRows' columns and values [N + 1, k]."""

  def __init__(self, matrix: Matrix):
    super().__init__()
    self.pruned = isinstance(matrix, PrunedRows)
    if self.pruned:
      n, k = matrix.columns.shape
      self.columns = tf.Variable(np.concatenate(
          [matrix.columns, np.full([1, k], n)]).astype(np.int64),
                                 trainable=False)
      self.values = tf.Variable(np.pad(matrix.values, [[0, 1], [0, 0]]),
                                trainable=False)
    else:
      n = len(matrix)
      padded = np.zeros([n + 1, n + 1], np.float32)
      padded[:n, :n] = matrix
      self.matrix = tf.Variable(padded, trainable=False)

  def term(self, rows, weights):
    """[B, N + 1]: the history's rows of the matrix (`rows` [B, H], the
    unknown id N for pads), each times its weight ([B, H]), summed.

    Dense: the weights are scattered into one [B, N + 1] row per user and
    multiplied by the matrix, so memory stays [B, N] however long the
    histories (a replay sends hundreds). Pruned: each history entry's kept
    entries are gathered ([B, H, k]) and summed by (user, column): a
    sparse-dense product would touch every kept entry of the catalogue
    (N x k) for each request, 4-5x the dense matrix's time at batch 1 on
    3,000 items."""
    shape = tf.shape(rows, out_type=tf.int64)
    batch = tf.broadcast_to(tf.range(shape[0])[:, tf.newaxis], shape)
    width = tf.shape(self.columns if self.pruned else self.matrix,
                     out_type=tf.int64)[0]
    if not self.pruned:
      dense = tf.scatter_nd(tf.reshape(tf.stack([batch, rows], -1), [-1, 2]),
                            tf.reshape(weights, [-1]),
                            tf.stack([shape[0], width]))
      return tf.matmul(dense, self.matrix)
    columns = tf.gather(self.columns, rows)  # [B, H, k]
    values = tf.gather(self.values, rows) * weights[..., tf.newaxis]
    segments = batch[..., tf.newaxis] * width + columns
    return tf.reshape(tf.math.unsorted_segment_sum(
        tf.reshape(values, [-1]), tf.reshape(segments, [-1]),
        shape[0] * width), tf.stack([shape[0], width]))

  def at(self, history, items):
    """[B, k, H]: the matrix at (history row h [B, H], item row k
    [B, k]). Pruned: each history row's kept columns are ascending, so a
    binary search finds the item or shows it was not kept (0)."""
    if not self.pruned:
      shape = tf.stack([tf.shape(items)[0], tf.shape(items)[1],
                        tf.shape(history)[1]])
      pairs = tf.stack([tf.broadcast_to(history[:, tf.newaxis, :], shape),
                        tf.broadcast_to(items[:, :, tf.newaxis], shape)], -1)
      return tf.gather_nd(self.matrix, pairs)
    columns = tf.gather(self.columns, history)  # [B, H, kept]
    targets = tf.broadcast_to(items[:, tf.newaxis, :], tf.stack(
        [tf.shape(items)[0], tf.shape(history)[1], tf.shape(items)[1]]))
    slot = tf.minimum(tf.searchsorted(columns, targets),
                      tf.shape(columns)[2] - 1)  # [B, H, k]
    found = tf.equal(tf.gather(columns, slot, batch_dims=2), targets)
    values = tf.gather(tf.gather(self.values, history), slot, batch_dims=2)
    return tf.transpose(tf.where(found, values, 0.0), [0, 2, 1])


def served_matrix(module) -> Matrix:
  """The item-item matrix an exported model (a loaded SavedModel or an
  export.RecommenderModule) holds, over its catalogue rows (without the
  unknown id's zero row and column); its IndexSettings say whether the
  term is on. Models exported before ServedMatrix hold the dense variable
  itself."""
  held = module.item_item
  if hasattr(held, "columns"):
    return PrunedRows(held.columns.numpy()[:-1], held.values.numpy()[:-1])
  dense = held.matrix if hasattr(held, "matrix") else held
  return dense.numpy()[:-1, :-1]


def served_parts(module, weight: float, decay: float,
                 history: Sequence[str], items: Sequence[str]) -> np.ndarray:
  """[len(items), len(history)]: each history entry's part of each item's
  item-item term in an exported model (`module`: a loaded SavedModel or an
  export.RecommenderModule; weight and decay from its IndexSettings), all 0
  when the term is off: weight x decay ** (entries newer) x the matrix at
  (history item, item). What the model adds to an item's cosine is the
  row's sum, and what leaving a history item out takes away is its column:
  the numpy reading of the in-graph term, for checks. `history` has no
  "" pads, oldest first; unknown ids score 0 but count as newer."""
  if not weight:
    return np.zeros([len(items), len(history)], np.float32)
  row = {i.decode(): r for r, i in enumerate(module.catalog_ids.numpy())}
  n = len(row)  # the unknown id's row: its row and column score 0
  rows = np.array([row.get(i, n) for i in history], np.int64)
  columns = np.array([row.get(i, n) for i in items], np.int64)
  block = _operand(served_matrix(module))[
      np.ix_(np.minimum(rows, n - 1), np.minimum(columns, n - 1))]
  block = block.toarray() if sp.issparse(block) else np.asarray(block)
  block = np.where((rows < n)[:, np.newaxis] & (columns < n), block, 0.0)
  weights = weight * history_weights(rows, decay)
  return (block * weights[:, np.newaxis]).T
