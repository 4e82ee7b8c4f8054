"""The curated schema matches features.py, and anomalies stop the run."""
import os

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.coders import example_coder

from components.anomaly_gate import component as gate
from pipeline.pipeline import SCHEMA_DIR
from trainer import features


@pytest.fixture(scope="module")
def schema():
  return tfdv.load_schema_text(os.path.join(SCHEMA_DIR, "schema.pbtxt"))


def test_schema_declares_every_raw_feature_with_its_type(schema):
  declared = {f.name: f for f in schema.feature}
  spec = features.raw_feature_spec()
  assert set(declared) == set(spec)
  kinds = {tf.string: schema_pb2.BYTES, tf.int64: schema_pb2.INT,
           tf.float32: schema_pb2.FLOAT}
  for key, feature_spec in spec.items():
    assert declared[key].type == kinds[feature_spec.dtype], key
    # Scalars are declared with shape [1] (dense); lists without a shape.
    assert declared[key].HasField("shape") == isinstance(
        feature_spec, tf.io.FixedLenFeature), key
  genres = [d for d in schema.string_domain if d.name == "genres"][0]
  assert tuple(genres.value) == features.GENRE_VOCAB


def _row(**overrides):
  row = {features.USER_ID: [b"1"], features.ITEM_ID: [b"2"],
         features.RATING: [4.0], features.TIMESTAMP: [881250949],
         features.AGE: [24], features.GENDER: [b"M"],
         features.OCCUPATION: [b"writer"], features.TITLE: [b"Heat"],
         features.YEAR: [1995], features.GENRES: [b"Action"],
         features.HISTORY: [b"1"]}
  row.update(overrides)
  return row


def _anomalies(schema, rows):
  examples = []
  for row in rows:
    feats = {}
    for k, values in row.items():
      if isinstance(values[0], bytes):
        feats[k] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
      elif isinstance(values[0], float):
        feats[k] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
      else:
        feats[k] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    examples.append(tf.train.Example(features=tf.train.Features(feature=feats)))
  batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(
      [e.SerializeToString() for e in examples])
  statistics = stats_impl.generate_statistics_in_memory(
      batch, tfdv.StatsOptions())
  return tfdv.validate_statistics(statistics, schema)


def test_clean_data_has_no_anomalies(schema):
  assert gate.describe({"train": _anomalies(schema, [_row(), _row()])}) == []
  # Eval examples also list every earlier item, however many; train ones
  # (above) do not carry the feature at all.
  rated_before = [str(i).encode() for i in range(300)]
  assert gate.describe({"eval": _anomalies(schema, [
      _row(**{features.RATED_BEFORE: rated_before}),
      _row(**{features.RATED_BEFORE: [b"1"]})])}) == []


def test_an_edited_schema_is_imported_again(tmp_path):
  """TFX's cache keys on execution properties: ImportSchemaGen's is only
  the file's path, so an edit used to be ignored by a pipeline root that had
  run before. CuratedSchemaGen's content hash is a property too."""
  from components.curated_schema_gen import component
  path = tmp_path / "schema.pbtxt"
  path.write_text(open(os.path.join(SCHEMA_DIR, "schema.pbtxt")).read())
  before = component.CuratedSchemaGen(schema_file=str(path)).exec_properties
  path.write_text(path.read_text() + "# reviewed\n")
  after = component.CuratedSchemaGen(schema_file=str(path)).exec_properties
  assert before["schema_file"] == after["schema_file"]
  assert before[component.SCHEMA_SHA256] != after[component.SCHEMA_SHA256]
  shipped = component.CuratedSchemaGen(schema_file="/app/schemas/x.pbtxt",
                                       schema_sha256="abc").exec_properties
  assert shipped[component.SCHEMA_SHA256] == "abc"


def test_schema_violations_are_listed_readably(schema):
  bad = [_row(), _row(**{features.RATING: [9.0],
                         features.GENDER: [b"X"]})]
  lines = gate.describe({"train": _anomalies(schema, bad)})
  text = "\n".join(lines)
  assert "[train] rating" in text and "[train] gender" in text


def test_schema_flags_timestamps_before_the_plausible_window(schema):
  """The schema carries ExampleGen's timestamp domain, so a row that got
  past the parser (e.g. written by another tool) is still an anomaly."""
  from components.movielens_example_gen import layouts
  ts = [d for d in schema.feature if d.name == features.TIMESTAMP][0]
  assert ts.int_domain.min == layouts.MIN_TIMESTAMP
  lines = gate.describe({"eval": _anomalies(
      schema, [_row(), _row(**{features.TIMESTAMP: [5]})])})
  assert any("[eval] timestamp" in line for line in lines)
