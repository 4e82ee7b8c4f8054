"""The item-item term's parts (trainer/item_item.py), on tiny known cases;
the exported model's use of it is tested on the pipeline fixture
(tests/test_pipeline.py)."""
import os

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from trainer import features  # noqa: E402
from trainer import item_item  # noqa: E402


def test_history_weights_decay_from_the_newest_entry():
  weights = item_item.history_weights(np.array([3, -1, 0, 2]), 0.5)
  # The unknown entry (-1) weighs nothing but still counts as newer.
  np.testing.assert_allclose(weights, [0.125, 0.0, 0.5, 1.0])


def test_a_user_who_rated_an_item_twice_counts_once():
  matrix = item_item.user_item_matrix(np.array(["a", "a", "b", "b"]),
                                      np.array([0, 0, 1, -1]), 3)
  np.testing.assert_array_equal(matrix.toarray(), [[1, 0, 0], [0, 1, 0]])


def test_sparse_and_dense_input_give_the_same_closed_form():
  rng = np.random.default_rng(0)
  x = (rng.random((30, 6)) < 0.4).astype(np.float32)
  users, items = np.nonzero(x)
  sparse = item_item.user_item_matrix(users, items, 6)
  np.testing.assert_allclose(item_item.ease_weights(sparse, 2.0),
                             item_item.ease_weights(x, 2.0), atol=1e-6)


def test_scores_are_the_weighted_sum_of_the_history_rows():
  matrix = np.arange(16, dtype=np.float32).reshape(4, 4)
  scores = item_item.scores(matrix, [np.array([1, 3]), np.array([], int)],
                            0.5)
  np.testing.assert_allclose(scores[0], 0.5 * matrix[1] + matrix[3])
  np.testing.assert_allclose(scores[1], 0.0)


def test_a_refreshed_catalogue_keeps_known_pairs_and_zeroes_new_items():
  matrix = np.arange(9, dtype=np.float32).reshape(3, 3)
  out = item_item.remap(matrix, np.array([b"a", b"b", b"c"]),
                        np.array(["c", "new", "a"], object))
  np.testing.assert_array_equal(out, [[8, 0, 6], [0, 0, 0], [2, 0, 0]])
  # With text and a share, the new item borrows from its known neighbours
  # (here "c" alone: cosine 1; "a" is orthogonal).
  text = np.array([[0, 1], [0, 2], [1, 0]], np.float32)
  borrowed = item_item.remap(matrix, np.array([b"a", b"b", b"c"]),
                             np.array(["c", "new", "a"], object), text,
                             neighbours=1, share=0.5)
  np.testing.assert_allclose(borrowed, [[8, 4, 6], [4, 0, 3], [2, 1, 0]])


def test_fit_reads_the_training_examples_and_prunes_above_max_items(
    tmp_path, monkeypatch):
  """fit reads (user, item) pairs from ExampleGen's gzipped tf.Examples
  (items outside the catalogue left out) into EASE's closed form; a
  catalogue above MAX_ITEMS gets EASE over its most-rated items, each row
  pruned."""
  path = str(tmp_path / "train.gz")
  pairs = [("u1", "a"), ("u1", "b"), ("u2", "b"), ("u2", "c"),
           ("u3", "a"), ("u3", "gone")]
  with tf.io.TFRecordWriter(path, "GZIP") as writer:
    for user, item in pairs:
      writer.write(tf.train.Example(features=tf.train.Features(feature={
          features.USER_ID: tf.train.Feature(
              bytes_list=tf.train.BytesList(value=[user.encode()])),
          features.ITEM_ID: tf.train.Feature(
              bytes_list=tf.train.BytesList(value=[item.encode()]))
      })).SerializeToString())
  ids = np.array([b"a", b"b", b"c"])
  x = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 0]], np.float32)
  np.testing.assert_allclose(item_item.fit([path], ids, 1.0),
                             item_item.ease_weights(x, 1.0), atol=1e-6)
  monkeypatch.setattr(item_item, "MAX_ITEMS", 2)
  rows = item_item.fit([path], ids, 1.0,
                       pruned=item_item.Pruning(row_entries=1))
  # a and b (rated twice each) are fit; c, rated once, keeps no entry.
  fitted = item_item.ease_weights(x[:, :2], 1.0)
  np.testing.assert_allclose(rows.csr().toarray(),
                             [[0, fitted[0, 1], 0], [fitted[1, 0], 0, 0],
                              [0, 0, 0]], atol=1e-6)


def test_pruned_rows_keep_each_rows_strongest_entries_in_column_order():
  matrix = np.array([[0, -3, 1, 2],
                     [4, 0, -1, 0.5],
                     [0.1, 0.2, 0, 0.3],
                     [1, 1, 1, 0]], np.float32)
  rows = item_item.prune_rows(matrix, 2)
  np.testing.assert_array_equal(rows.columns[:3], [[1, 3], [0, 2], [1, 3]])
  np.testing.assert_allclose(rows.values[:3], [[-3, 2], [4, -1],
                                               [0.2, 0.3]])
  # All of a row kept: the matrix itself, and the term it gives.
  whole = item_item.prune_rows(matrix, 4)
  np.testing.assert_array_equal(whole.csr().toarray(), matrix)
  histories = [np.array([2, 0]), np.array([3, -1, 1])]
  np.testing.assert_allclose(item_item.scores(whole, histories, 0.5),
                             item_item.scores(matrix, histories, 0.5))
  # Over a subset of a larger catalogue: its rows and columns by row.
  part = item_item.prune_rows(matrix[:2, :2], 1, np.array([1, 3]), 5)
  np.testing.assert_array_equal(part.columns, [[5], [3], [5], [1], [5]])
  np.testing.assert_array_equal(part.values[:, 0], [0, -3, 0, 4, 0])


def test_above_max_items_ease_is_fit_over_the_most_rated_items(
    monkeypatch):
  """Above MAX_ITEMS the trained matrix is EASE over the MAX_ITEMS
  most-rated items (ties to the lower row), pruned per row; the rest
  score nothing, and a new item borrows from the fitted items only."""
  rng = np.random.default_rng(3)
  x = (rng.random((40, 6)) < np.array([0.6, 0.1, 0.5, 0.4, 0.05, 0.3])
       ).astype(np.float32)
  users, items = np.nonzero(x)
  monkeypatch.setattr(item_item, "MAX_ITEMS", 4)
  counts = x.sum(0)
  fitted = np.sort(np.argsort(-counts, kind="stable")[:4])
  expected = np.zeros([7, 7], np.float32)
  expected[np.ix_(fitted, fitted)] = item_item.ease_weights(x[:, fitted], 5.0)
  rows = item_item.trained_matrix(users, items, 7, 5.0,
                                  pruned=item_item.Pruning(row_entries=4))
  assert isinstance(rows, item_item.PrunedRows)
  np.testing.assert_allclose(rows.csr().toarray(), expected, atol=1e-6)
  # Item 6 is new (nobody rated it): with text it borrows from its nearest
  # fitted items, never from the two rated ones EASE left out.
  text = rng.normal(size=(7, 3)).astype(np.float32)
  lent = item_item.trained_matrix(users, items, 7, 5.0, text, 2, 0.5,
                                  item_item.Pruning(row_entries=7)).csr()
  new = np.arange(7) == 6
  lenders = np.isin(np.arange(7), fitted)
  weights = item_item._text_neighbour_weights(text, new, lenders, 2)
  assert set(weights.indices) <= set(fitted)
  np.testing.assert_allclose(lent.toarray()[6], 0.5 * (weights @ expected)[0],
                             atol=1e-6)
  unfitted = ~lenders & ~new
  assert not lent.toarray()[unfitted].any()
  assert not lent.toarray()[:, unfitted].any()
  pruned = item_item.trained_matrix(users, items, 7, 5.0,
                                    pruned=item_item.Pruning(row_entries=2))
  assert (pruned.columns < 7).sum(1).tolist() == [
      2 if r in fitted else 0 for r in range(7)]


def test_pruned_rows_of_a_catalogue_nobody_rated_are_all_pads():
  rows = item_item.trained_matrix(np.array([], object),
                                  np.array([], np.int64), 3, 1.0,
                                  pruned=item_item.Pruning(0, 2))
  assert not rows.csr().nnz and len(rows.columns) == 3


def test_a_catalogue_above_dense_items_is_pruned_whole():
  """Below MAX_ITEMS but above Pruning.dense_items every rated item is fit
  and each row pruned: with every entry kept, the dense matrix."""
  rng = np.random.default_rng(4)
  x = (rng.random((30, 5)) < 0.4).astype(np.float32)
  users, items = np.nonzero(x)
  dense = item_item.trained_matrix(users, items, 5, 2.0)
  assert isinstance(dense, np.ndarray)
  rows = item_item.trained_matrix(users, items, 5, 2.0,
                                  pruned=item_item.Pruning(0, 5))
  np.testing.assert_allclose(rows.csr().toarray(), dense, atol=1e-6)


def test_a_refreshed_catalogue_remaps_pruned_rows():
  """remap on PrunedRows: known pairs keep their value under the new rows,
  entries at items the new catalogue dropped and new items' rows are
  pads, each row's columns ascending again."""
  matrix = np.arange(9, dtype=np.float32).reshape(3, 3)
  rows = item_item.prune_rows(matrix, 3)
  out = item_item.remap(rows, np.array([b"a", b"b", b"c"]),
                        np.array(["c", "new", "a"], object))
  np.testing.assert_array_equal(out.csr().toarray(),
                                [[8, 0, 6], [0, 0, 0], [2, 0, 0]])
  assert np.all(np.diff(out.columns, axis=1) >= 0)


def test_pruned_rows_borrow_as_the_dense_matrix_does():
  """With every entry kept, new items borrow into PrunedRows exactly what
  they borrow into the dense matrix, at training and in a refreshed
  catalogue; with k entries each row keeps its k strongest, borrowed
  entries competing with the rest."""
  rng = np.random.default_rng(5)
  x = (rng.random((40, 6)) < 0.4).astype(np.float32)
  users, items = np.nonzero(x)
  text = rng.normal(size=(8, 4)).astype(np.float32)  # 6 and 7 are new
  dense = item_item.trained_matrix(users, items, 8, 3.0, text, 3, 0.5)
  whole = item_item.trained_matrix(users, items, 8, 3.0, text, 3, 0.5,
                                   item_item.Pruning(0, 8))
  np.testing.assert_allclose(whole.csr().toarray(), dense, atol=1e-6)
  assert dense[6].any() and dense[:, 7].any()
  strongest = item_item.trained_matrix(users, items, 8, 3.0, text, 3, 0.5,
                                       item_item.Pruning(0, 2)).csr()
  assert (np.diff(strongest.indptr) <= 2).all()
  unpruned = item_item.borrow_for_new_items(
      item_item.prune_rows(item_item.trained_matrix(users, items, 8, 3.0),
                           2), text, np.arange(8) >= 6, 3, 0.5).csr()
  # Each row's two strongest among what it held before pruning again.
  for row in range(8):
    held = unpruned[row].toarray().ravel()
    kept = strongest[row].toarray().ravel()
    assert np.count_nonzero(kept) == min(2, np.count_nonzero(held))
    assert np.abs(kept).sum() == pytest.approx(
        np.sort(np.abs(held))[::-1][:2].sum(), rel=1e-6)
  # A refreshed catalogue: "new" borrows into rows as into the dense matrix.
  ids = np.array([b"a", b"b", b"c"])
  matrix = np.array([[0, 1, 2], [3, 0, 4], [5, 6, 0]], np.float32)
  fresh = np.array(["c", "new", "a"], object)
  vectors = np.array([[1, 0], [1, 1], [0, 1]], np.float32)
  np.testing.assert_allclose(
      item_item.remap(item_item.prune_rows(matrix, 3), ids, fresh, vectors,
                      2, 0.5).csr().toarray(),
      item_item.remap(matrix, ids, fresh, vectors, 2, 0.5), atol=1e-6)


def test_a_new_item_borrows_its_text_neighbours_rows_and_columns():
  """A new item's row and column become the cosine-weighted mean of its
  nearest rated items' (by text), a negative cosine weighing 0; rated
  pairs keep their value and two new items score nothing together."""
  matrix = np.array([[0, 1, 2, 0, 0],
                     [3, 0, 4, 0, 0],
                     [5, 6, 0, 0, 0],
                     [0, 0, 0, 0, 0],
                     [0, 0, 0, 0, 0]], np.float32)
  text = np.array([[1, 0], [0, 1], [-1, 0], [3, 1], [1, 1]], np.float32)
  new = np.array([False, False, False, True, True])
  out = item_item.borrow_for_new_items(matrix, text, new, neighbours=2)
  np.testing.assert_array_equal(out[:3, :3], matrix[:3, :3])
  # Item 3's nearest two: 0 (cosine 0.949) and 1 (0.316); item 4's: 0 and
  # 1 alike (0.707 each). Item 2 (cosine < 0 to both) is never borrowed.
  w3 = np.array([3, 1]) / 4.0
  np.testing.assert_allclose(out[3, :3], w3 @ matrix[:2, :3], rtol=1e-6)
  np.testing.assert_allclose(out[:3, 3], matrix[:3, :2] @ w3, rtol=1e-6)
  np.testing.assert_allclose(out[4, :3], [1.5, 0.5, 3.0], rtol=1e-6)
  np.testing.assert_array_equal(out[3:, 3:], 0.0)
  half = item_item.borrow_for_new_items(matrix, text, new, 2, share=0.5)
  np.testing.assert_allclose(half[3:], 0.5 * out[3:], rtol=1e-6)
  np.testing.assert_allclose(half[:, 3:], 0.5 * out[:, 3:], rtol=1e-6)
  # Share 0: the matrix as it was.
  np.testing.assert_array_equal(
      item_item.borrow_for_new_items(matrix, text, new, 2, share=0.0), matrix)


def test_the_trained_matrix_lends_to_the_items_no_training_pair_holds():
  users = np.array(["u1", "u1", "u2", "u2", "u3"])
  items = np.array([0, 1, 1, 2, 0])
  text = np.array([[1, 0], [0, 1], [1, 1], [1, 0.1]], np.float32)
  plain = item_item.trained_matrix(users, items, 4, 1.0)
  assert not plain[3].any() and not plain[:, 3].any()
  lent = item_item.trained_matrix(users, items, 4, 1.0, text, 2, 0.5)
  np.testing.assert_allclose(
      lent, item_item.borrow_for_new_items(
          plain, text, np.array([False, False, False, True]), 2, 0.5))
  assert lent[3].any() and lent[:, 3].any()
