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
stage. The matrix is dense [N, N]: the Trainer builds it only for catalogues
up to MAX_ITEMS items: at 10,000 the inverse is 0.8 GB in float64 and the
exported variable 0.4 GB; a larger catalogue would need a sparse matrix
(each row's strongest entries), not built.
"""
from typing import Dict, Iterable, NamedTuple, Optional, Sequence

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from trainer import features

# Largest catalogue the Trainer builds the dense matrix for.
MAX_ITEMS = 10000


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


def scores(matrix: np.ndarray, histories: Iterable[np.ndarray],
           decay: float) -> np.ndarray:
  """[n, N] the term for each history (catalogue rows, oldest first)."""
  return np.asarray(query_rows(list(histories), len(matrix), decay) @ matrix)


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
      *new_item_borrowing(config, text_vectors))


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
                   neighbours: int = 0, share: float = 0.0) -> np.ndarray:
  """[n, N] the term (weight 1) for `queries`' histories, EASE fit on
  `train` (validation.Interactions both): bench-quality's ease_recency
  (no text: no borrowing)."""
  matrix = trained_matrix(train.users, train.items, num_items, l2,
                          text_vectors, neighbours, share)
  return scores(matrix, queries.histories, decay)


def trained_matrix(users: Sequence, items: np.ndarray, num_items: int,
                   l2: float, text_vectors: Optional[np.ndarray] = None,
                   neighbours: int = 0, share: float = 0.0) -> np.ndarray:
  """EASE's [N, N] from training (user, catalogue row) pairs; with
  `text_vectors` and a `share`, items no pair holds borrow their text
  neighbours' rows and columns (borrow_for_new_items)."""
  items = np.asarray(items)
  matrix = ease_weights(user_item_matrix(users, items, num_items), l2)
  if text_vectors is None or not share:
    return matrix
  new = np.bincount(items[items >= 0], minlength=num_items) == 0
  return borrow_for_new_items(matrix, text_vectors, new, neighbours, share)


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
        share: float = 0.0) -> Optional[np.ndarray]:
  """EASE's [N, N] over catalogue rows from the training examples (new
  items borrowing as trained_matrix says), or None (with a warning) for a
  catalogue above MAX_ITEMS."""
  if len(item_ids) > MAX_ITEMS:
    tf.get_logger().warning(
        "item-item term off: %d items is above %d (a dense inverse)",
        len(item_ids), MAX_ITEMS)
    return None
  row_of = {(i.decode() if isinstance(i, bytes) else i): r
            for r, i in enumerate(item_ids)}
  users, items = read_pairs(files, row_of)
  return trained_matrix(users, items, len(item_ids), l2, text_vectors,
                        neighbours, share)


def borrow_for_new_items(matrix: np.ndarray, text_vectors: np.ndarray,
                         new: np.ndarray, neighbours: int,
                         share: float = 1.0) -> np.ndarray:
  """`matrix` with each new item's row and column (all 0: nobody rated it
  in training) `share` x the mean of its `neighbours` nearest rated items'
  rows and columns, nearest and weighted by the cosine of their catalogue
  texts (negative cosines weigh 0).

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
    matrix: [N, N] EASE's matrix over catalogue rows.
    text_vectors: [N, d] the catalogue's text vectors (the frozen encoder's).
    new: [N] bool, the items nobody rated in training.
    neighbours: how many rated items each new one borrows from.
    share: what a new item gets of their mean; 0 leaves `matrix` as it is.
  """
  new = np.asarray(new, bool)
  rated = np.flatnonzero(~new)
  if not share or not new.any() or not len(rated):
    return matrix
  k = min(int(neighbours), len(rated))
  unit = text_vectors / np.maximum(
      np.linalg.norm(text_vectors, axis=1, keepdims=True), 1e-12)
  cosine = unit[new] @ unit[rated].T  # [new, rated]
  nearest = np.argpartition(-cosine, k - 1, axis=1)[:, :k]
  weights = np.maximum(np.take_along_axis(cosine, nearest, 1), 0.0)
  weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
  borrow = np.zeros([int(new.sum()), len(matrix)], np.float64)
  np.put_along_axis(borrow, rated[nearest], weights, 1)
  out = np.array(matrix, np.float32)
  base = np.asarray(matrix, np.float64)
  out[:, new] = (share * base @ borrow.T).astype(np.float32)
  out[new, :] = (share * borrow @ base).astype(np.float32)
  out[np.ix_(new, new)] = 0.0  # two new items: neither was rated
  return out


def remap(matrix: np.ndarray, old_ids: np.ndarray, new_ids: np.ndarray,
          text_vectors: Optional[np.ndarray] = None, neighbours: int = 0,
          share: float = 0.0) -> np.ndarray:
  """The [N', N'] matrix over `new_ids` (a refreshed catalogue): pairs of
  items both catalogues hold keep their value; new items get 0 (nobody
  rated them in training: only the towers place them) or, with
  `text_vectors` [N', d] and a `share`, borrow from their text neighbours
  among the known ones (borrow_for_new_items)."""
  decode = lambda i: i.decode() if isinstance(i, bytes) else i  # noqa: E731
  old_row = {decode(i): r for r, i in enumerate(old_ids)}
  rows = np.array([old_row.get(decode(i), -1) for i in new_ids])
  known = rows >= 0
  out = np.zeros([len(new_ids), len(new_ids)], np.float32)
  out[np.ix_(known, known)] = matrix[np.ix_(rows[known], rows[known])]
  if text_vectors is None or not share:
    return out
  return borrow_for_new_items(out, text_vectors, ~known, neighbours, share)


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
  unknown = len(row)  # the matrix's zero row and column
  matrix = module.item_item.numpy()
  rows = np.array([row.get(i, unknown) for i in history], np.int64)
  columns = np.array([row.get(i, unknown) for i in items], np.int64)
  weights = weight * history_weights(rows, decay)
  return (matrix[np.ix_(rows, columns)] * weights[:, np.newaxis]).T
