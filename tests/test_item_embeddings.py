"""The ItemEmbeddings artifact format and the Trainer's checks on it."""
import numpy as np
import pytest
import tensorflow as tf

from trainer import features
from trainer import item_embeddings


def _catalog(ids):
  return {features.ITEM_ID: tf.constant([[i] for i in ids]),
          features.TITLE: tf.constant([[f"Movie {i}"] for i in ids]),
          features.YEAR: tf.constant([[1995]] * len(ids), tf.int64),
          features.GENRES: tf.sparse.from_dense(tf.constant(
              [["Animation", "Children's"]] +
              [["Drama", ""]] * (len(ids) - 1)))}


def test_round_trip_and_checks(tmp_path):
  ids = ["1", "2", "3"]
  vectors = {k: np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
             for k in ("item_text", "genres")}
  uri = str(tmp_path / "emb")
  item_embeddings.write(uri, ids, vectors, {"dim": 4})
  got_ids, got = item_embeddings.read(uri)
  assert got_ids == ids and set(got) == set(vectors)
  np.testing.assert_array_equal(got["genres"], vectors["genres"])
  loaded = item_embeddings.load_or_encode(uri, None, _catalog(ids),
                                          ["item_text", "genres"])
  np.testing.assert_array_equal(loaded["item_text"], vectors["item_text"])
  with pytest.raises(ValueError, match="another catalogue"):
    item_embeddings.load_or_encode(uri, None, _catalog(["1", "2"]),
                                   ["item_text"])
  with pytest.raises(ValueError, match=r"lack kinds \['title'\]"):
    item_embeddings.load_or_encode(uri, None, _catalog(ids),
                                   ["item_text", "title"])


def test_an_artifact_in_another_row_order_loads_by_item_id(tmp_path):
  """Artifacts written before the catalogue was sorted by id hold the same
  items in ExampleGen's file order: their rows follow the ids."""
  vectors = {"item_text": np.array([[3.0], [1.0], [2.0]], np.float32)}
  uri = str(tmp_path / "emb")
  item_embeddings.write(uri, ["3", "1", "2"], vectors, {"dim": 1})
  loaded = item_embeddings.load_or_encode(uri, None, _catalog(["1", "2", "3"]),
                                          ["item_text"])
  np.testing.assert_array_equal(loaded["item_text"], [[1.0], [2.0], [3.0]])


def test_the_catalogue_reads_in_item_id_order_whatever_the_file_order(
    tmp_path):
  from movielens_fixtures import write_examples
  paths = []
  for name, ids in (("one", ["2", "10", "1"]), ("other", ["1", "2", "10"])):
    path = str(tmp_path / name)
    write_examples(path, [{features.ITEM_ID: item,
                           features.TITLE: f"Film {item}",
                           features.GENRES: [f"g{item}"]} for item in ids])
    paths.append(path)
  one, other = (item_embeddings.read_catalog(p) for p in paths)
  assert item_embeddings.catalog_ids(one) == ["1", "10", "2"]
  for key in one:
    dense = lambda t: tf.sparse.to_dense(t) if isinstance(  # noqa: E731
        t, tf.SparseTensor) else t
    np.testing.assert_array_equal(dense(one[key]), dense(other[key]))
  assert item_embeddings.catalog_texts(one, "genres") == [b"g1", b"g10", b"g2"]


def test_texts_per_kind_and_kind_parsing():
  catalog = _catalog(["1", "2"])
  assert item_embeddings.catalog_texts(catalog, "item_text")[0] == \
      b"Movie 1 (1995). Animation, Children's"
  assert item_embeddings.catalog_texts(catalog, "title") == [b"Movie 1",
                                                             b"Movie 2"]
  assert item_embeddings.catalog_texts(catalog, "genres") == [
      b"Animation, Children's", b"Drama"]
  assert item_embeddings.needed_kinds("title, genres") == [
      "item_text", "title", "genres"]
  with pytest.raises(ValueError, match="plot"):
    item_embeddings.parse_kinds("title,plot")
