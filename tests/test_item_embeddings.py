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


class _CountingEncoder:
  """The real encoder, counting the texts it is asked to tokenise."""

  def __init__(self, encoder):
    self.encoder, self.dim, self.texts = encoder.encoder, encoder.dim, []
    self._tokenizer = encoder.tokenizer

  def tokenizer(self, strings):
    self.texts.extend(strings.numpy().tolist())
    return self._tokenizer(strings)


def test_the_next_catalogue_encodes_only_new_and_edited_texts(
    text_encoder_dir, tmp_path):
  from trainer.text_tower import TextEncoder
  encoder = TextEncoder(text_encoder_dir, 32)
  settings = {"text_encoder_dir": text_encoder_dir, "max_length": 32,
              "dim": encoder.dim}
  first = _catalog(["1", "2", "3"])
  kinds = ["item_text", "title"]
  uri = str(tmp_path / "first")
  item_embeddings.write(
      uri, item_embeddings.catalog_ids(first),
      item_embeddings.encode_catalog(encoder, first, kinds), settings,
      {k: item_embeddings.catalog_texts(first, k) for k in kinds})
  # The next period: item 2 retitled, item 4 new.
  second = _catalog(["1", "2", "3", "4"])
  second[features.TITLE] = tf.constant(
      [["Movie 1"], ["Movie 2: Director's Cut"], ["Movie 3"], ["Movie 4"]])

  counting = _CountingEncoder(encoder)
  known = item_embeddings.reusable_vectors(uri, counting, settings)
  assert len(counting.texts) == item_embeddings.SPOT_CHECKS - 2  # 6 distinct
  counting.texts.clear()
  reused = item_embeddings.encode_catalog(counting, second, kinds, known)
  assert sorted(counting.texts) == sorted([
      b"Movie 2: Director's Cut (1995). Drama", b"Movie 4 (1995). Drama",
      b"Movie 2: Director's Cut", b"Movie 4"])
  fresh = item_embeddings.encode_catalog(encoder, second, kinds)
  for kind in kinds:
    np.testing.assert_allclose(reused[kind], fresh[kind], atol=1e-5)

  # Another encoder setting, or vectors this encoder does not reproduce
  # (new weights in the same folder): nothing is reused.
  assert item_embeddings.reusable_vectors(
      uri, encoder, dict(settings, max_length=64)) == {}
  wrong = str(tmp_path / "wrong")
  item_embeddings.write(
      wrong, ["1", "2", "3"],
      {k: -v for k, v in item_embeddings.read(uri)[1].items()}, settings,
      {k: item_embeddings.catalog_texts(first, k) for k in kinds})
  assert item_embeddings.reusable_vectors(wrong, encoder, settings) == {}
  # An artifact from before texts were stored is read, never reused.
  old = str(tmp_path / "old")
  item_embeddings.write(old, ["1", "2", "3"], item_embeddings.read(uri)[1],
                        settings)
  assert item_embeddings.reusable_vectors(old, encoder, settings) == {}


def test_the_previous_embeddings_resolver_hands_the_newest_or_nothing():
  """A store's first run has no earlier ItemEmbeddings: the resolver hands
  the embedder nothing instead of failing (TFX's LatestArtifactStrategy
  answers None there, which fails the node with an ERROR traceback)."""
  from components.item_text_embedder.component import ItemEmbeddings
  from components.item_text_embedder.component import LatestOrNothing
  artifacts = []
  for artifact_id in (7, 12, 9):
    artifact = ItemEmbeddings()
    artifact.id = artifact_id
    artifacts.append(artifact)
  strategy = LatestOrNothing()
  assert strategy.resolve_artifacts(None, {"item_embeddings": []}) == {
      "item_embeddings": []}
  newest = strategy.resolve_artifacts(None, {"item_embeddings": artifacts})
  assert [a.id for a in newest["item_embeddings"]] == [12]
