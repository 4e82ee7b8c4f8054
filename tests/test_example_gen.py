"""MovieLensExampleGen on small fixtures: join, history, time split, rejects."""
import glob
import json
import os

import pytest
import tensorflow as tf
from movielens_fixtures import write_recbole
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from components.movielens_example_gen import executor
from components.movielens_example_gen import transforms
from trainer import features

ITEMS = [(1, "Toy Story", 1995, "Animation Children's Comedy"),
         (2, "GoldenEye", 1995, "Action Adventure Thriller"),
         (3, "Four Rooms", 1995, "Thriller"),
         (4, "Get Shorty", 1995, "Action Comedy Drama")]
USERS = [(1, 24, "M", "technician", "85711"), (2, 53, "F", "other", "94043")]
# (user, item, rating, timestamp). User 1 rates items 2 and 3 at the same time.
INTERACTIONS = [(1, 1, 5, 100), (1, 2, 3, 200), (1, 3, 4, 200), (1, 4, 2, 900),
                (2, 2, 4, 150), (2, 1, 5, 950), (2, 3, 1, 1000)]


def run_example_gen(tmp_path, data_dir, beam_args=("--runner=DirectRunner",),
                    **props):
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / "examples")
  exec_properties = {executor.DATA_DIR: data_dir, executor.EVAL_FRACTION: 0.1,
                     executor.MAX_REJECT_FRACTION: 0.01,
                     executor.MAX_HISTORY: 50, executor.TRAIN_UNTIL: None,
                     # The fixtures' clock starts at 0, with two users.
                     executor.MIN_TIMESTAMP: 0,
                     executor.MIN_TRAIN_USERS: 1}
  exec_properties.update(props)
  context = base_beam_executor.BaseBeamExecutor.Context(
      beam_pipeline_args=list(beam_args), tmp_dir=str(tmp_path))
  executor.Executor(context).Do({}, {executor.EXAMPLES: [examples]},
                                exec_properties)
  return examples


def read_split(examples, split):
  uri = artifact_utils.get_split_uri([examples], split)
  files = glob.glob(os.path.join(uri, "*.gz"))
  spec = (features.raw_feature_spec() if split != features.CATALOG_SPLIT else
          {k: v for k, v in features.raw_feature_spec().items()
           if k in features.ITEM_FEATURES})
  rows = []
  for record in tf.data.TFRecordDataset(files, "GZIP"):
    parsed = tf.io.parse_single_example(record, spec)
    row = {}
    for k, v in parsed.items():
      v = tf.sparse.to_dense(v) if isinstance(v, tf.SparseTensor) else v
      values = [x.decode() if isinstance(x, bytes) else x
                for x in v.numpy().tolist()]
      row[k] = (values if k in (features.GENRES, features.HISTORY,
                                features.RATED_BEFORE, features.COLD_ITEM,
                                features.COLD_USER)
                else values[0])
    rows.append(row)
  return rows


def test_time_split_and_history_without_leakage(tmp_path):
  data_dir = write_recbole(str(tmp_path / "data"), INTERACTIONS, ITEMS, USERS)
  examples = run_example_gen(tmp_path, data_dir, **{executor.TRAIN_UNTIL: 900})
  train = read_split(examples, "train")
  evaluation = read_split(examples, "eval")
  assert len(train) == 5 and len(evaluation) == 2
  assert max(r[features.TIMESTAMP] for r in train) <= 900
  assert min(r[features.TIMESTAMP] for r in evaluation) > 900
  when = {(str(u), str(i)): t for u, i, _, t in INTERACTIONS}
  for row in train + evaluation:
    for earlier in row[features.HISTORY]:
      assert when[(row[features.USER_ID], earlier)] < row[features.TIMESTAMP]
  by_key = {(r[features.USER_ID], r[features.ITEM_ID]): r
            for r in train + evaluation}
  # Same-timestamp ratings do not see each other.
  assert by_key[("1", "2")][features.HISTORY] == ["1"]
  assert by_key[("1", "3")][features.HISTORY] == ["1"]
  assert by_key[("1", "4")][features.HISTORY] == ["1", "2", "3"]
  # Joined features.
  assert by_key[("2", "1")][features.TITLE] == "Toy Story"
  assert by_key[("2", "1")][features.OCCUPATION] == "other"
  assert by_key[("1", "2")][features.GENRES] == ["Action", "Adventure",
                                                 "Thriller"]
  assert len(read_split(examples, "items")) == len(ITEMS)
  assert examples.get_int_custom_property("train_until") == 900


def test_eval_examples_say_whether_their_item_and_user_are_new(tmp_path):
  """The Evaluator's cold-start slices. Cut at 200: item 4 is first rated
  after it (items 1 and 3 before), and user 3 first rates after it (users
  1 and 2 before). Train examples carry no flags (everything there is in
  training)."""
  data_dir = write_recbole(
      str(tmp_path / "data"),
      INTERACTIONS + [(2, 5, 3, 170), (3, 1, 4, 960)],
      ITEMS + [(5, "Copycat", 1995, "Crime Drama Horror")],
      USERS + [(3, 23, "M", "writer", "32067")])
  examples = run_example_gen(tmp_path, data_dir, **{executor.TRAIN_UNTIL: 200})
  cold = {(r[features.USER_ID], r[features.ITEM_ID]):
          (r[features.COLD_ITEM], r[features.COLD_USER])
          for r in read_split(examples, "eval")}
  assert cold == {("1", "4"): ([1], [0]), ("2", "1"): ([0], [0]),
                  ("2", "3"): ([0], [0]), ("3", "1"): ([0], [1])}
  assert all(r[features.COLD_ITEM] == r[features.COLD_USER] == []
             for r in read_split(examples, "train"))


def test_eval_examples_list_every_earlier_item_beyond_the_history(tmp_path):
  """The Evaluator excludes everything a user rated before (a user does not
  re-rate a movie), so eval examples carry that whole list, not capped like
  the model's history; train examples, never evaluated, do not."""
  data_dir = write_recbole(str(tmp_path / "data"), INTERACTIONS, ITEMS, USERS)
  examples = run_example_gen(tmp_path, data_dir, **{
      executor.TRAIN_UNTIL: 900, executor.MAX_HISTORY: 1})
  evaluation = {(r[features.USER_ID], r[features.ITEM_ID]): r
                for r in read_split(examples, "eval")}
  assert evaluation[("2", "3")][features.HISTORY] == ["1"]
  assert evaluation[("2", "3")][features.RATED_BEFORE] == ["2", "1"]
  assert evaluation[("2", "1")][features.RATED_BEFORE] == ["2"]
  uri = artifact_utils.get_split_uri([examples], "train")
  for record in tf.data.TFRecordDataset(glob.glob(os.path.join(uri, "*.gz")),
                                        "GZIP"):
    example = tf.train.Example.FromString(record.numpy())
    assert features.RATED_BEFORE not in example.features.feature
    assert features.HISTORY in example.features.feature


def test_default_cutoff_holds_out_last_tenth_of_time():
  assert transforms.time_cutoff((0, 1000), 0.1, None) == 900
  assert transforms.time_cutoff((0, 1000), 0.1, 500) == 500


def test_rejects_are_written_and_too_many_stop_the_run(tmp_path):
  bad = INTERACTIONS + [b"1\t2\tnot-a-rating\t300\n", (1, 99, 4, 400)]
  data_dir = write_recbole(str(tmp_path / "data"), bad, ITEMS, USERS)
  with pytest.raises(executor.TooManyRejects) as info:
    run_example_gen(tmp_path, data_dir)
  report = str(info.value)
  assert "interactions: 2 of 9 rows rejected" in report
  assert "rating is not a number" in report
  assert "item_id '99' not in its table" in report

  examples = run_example_gen(tmp_path / "lenient", data_dir,
                             **{executor.MAX_REJECT_FRACTION: 0.5})
  rejects_dir = os.path.join(examples.uri, executor.REJECTS_DIR)
  lines = []
  for path in glob.glob(os.path.join(rejects_dir, "rejects*.tsv")):
    lines += open(path).read().splitlines()[1:]
  assert len(lines) == 2
  counts = json.load(open(os.path.join(rejects_dir, executor.COUNTS_FILE)))
  assert counts["split:train"]["written"] + counts["split:eval"]["written"] \
      == len(INTERACTIONS)
  assert examples.get_int_custom_property("rejected_rows") == 2


def test_original_ml100k_layout_end_to_end(tmp_path):
  data_dir = tmp_path / "ml-100k"
  data_dir.mkdir()
  (data_dir / "u.data").write_text(
      "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in INTERACTIONS))
  flags = lambda gs: "|".join("1" if g in gs.split() else "0"
                              for g in features.GENRE_VOCAB)
  (data_dir / "u.item").write_bytes("".join(
      f"{i}|{t} ({y})|01-Jan-{y}||url|{flags(g)}\n" for i, t, y, g in ITEMS
  ).encode("latin-1"))
  (data_dir / "u.user").write_text(
      "".join("|".join(map(str, u)) + "\n" for u in USERS))
  examples = run_example_gen(tmp_path, str(data_dir))
  rows = read_split(examples, "train") + read_split(examples, "eval")
  assert len(rows) == len(INTERACTIONS)
  assert {r[features.TITLE] for r in rows} == {t for _, t, _, _ in ITEMS}


def _split_files(examples):
  """{split: {file name: [records in file order]}}."""
  out = {}
  for split in ("train", "eval", "items"):
    uri = artifact_utils.get_split_uri([examples], split)
    out[split] = {os.path.basename(f): [r.numpy() for r in
                                        tf.data.TFRecordDataset(f, "GZIP")]
                  for f in sorted(glob.glob(os.path.join(uri, "*")))}
  return out


@pytest.mark.long
def test_two_worker_processes_write_the_same_files(tmp_path):
  """Not just the same examples: the same files, each in the same order, so
  the Trainer's seeded shuffle feeds the same batches on any runner. Beam's
  two-process runner starts its workers in about a minute on 2 cores, so
  this runs in make bench-long-tests."""
  from pipeline import beam
  rng = __import__("random").Random(3)
  users = [(u, 20 + u, "MF"[u % 2], "other", "00000") for u in range(1, 31)]
  inter = [(rng.randint(1, 30), rng.randint(1, 4), rng.randint(1, 5),
            rng.randint(0, 1000)) for _ in range(400)]
  data_dir = write_recbole(str(tmp_path / "data"), inter, ITEMS, users)
  outputs = []
  for workers in (1, 2):
    examples = run_example_gen(tmp_path / f"w{workers}", data_dir,
                               beam_args=beam.beam_pipeline_args(
                                   "direct", workers))
    outputs.append(_split_files(examples))
  assert outputs[0] == outputs[1]
  assert list(outputs[0]["train"]) == ["data_tfrecord-00000-of-00001.gz"]
  train, = outputs[0]["train"].values()
  (evaluation,) = outputs[0]["eval"].values()
  assert len(train) + len(evaluation) == len(inter)
  assert train == sorted(train)


def test_records_are_sharded_by_count_and_every_shard_is_written(tmp_path):
  """Shards follow the record count (not the workers); a split with no
  records is still one (empty) file."""
  import apache_beam as beam
  records = [f"record {i}".encode() for i in range(25)]
  with beam.Pipeline() as p:
    _ = (p | "Records" >> beam.Create(records)
         | "Write" >> transforms.WriteInCanonicalOrder(
             str(tmp_path / "full" / "data"), records_per_shard=10))
    _ = (p | "None" >> beam.Create([], reshuffle=False).with_output_types(
        bytes)
         | "WriteEmpty" >> transforms.WriteInCanonicalOrder(
             str(tmp_path / "empty" / "data")))
  files = sorted(glob.glob(str(tmp_path / "full" / "*")))
  assert [os.path.basename(f) for f in files] == [
      f"data-0000{i}-of-00003.gz" for i in range(3)]
  shards = [[r.numpy() for r in tf.data.TFRecordDataset(f, "GZIP")]
            for f in files]
  assert sorted(sum(shards, [])) == sorted(records)
  assert all(shard == sorted(shard) for shard in shards)
  empty = glob.glob(str(tmp_path / "empty" / "*"))
  assert [os.path.basename(f) for f in empty] == ["data-00000-of-00001.gz"]
  assert not list(tf.data.TFRecordDataset(empty, "GZIP"))


def test_a_dead_writers_temporary_file_never_lands_in_the_output(tmp_path):
  """Shards are written beside the output folder and renamed into it; what
  a worker that died mid-write left there is removed after the write."""
  import apache_beam as beam
  staging = tmp_path / "split.staging"
  staging.mkdir()
  (staging / "data-00000-of-00001.gz.dead.tmp").write_bytes(b"half a shard")
  with beam.Pipeline() as p:
    _ = (p | "Records" >> beam.Create([b"a", b"b"])
         | "Write" >> transforms.WriteInCanonicalOrder(
             str(tmp_path / "split" / "data")))
  assert os.listdir(tmp_path / "split") == ["data-00000-of-00001.gz"]
  assert not staging.exists()


# 1997-11-15 and on: inside the default plausible window.
REAL_TIME = 879552000


BAD_TIMES = ["5", "4102444800", "inf", "-1", "8.8e99"]  # 2100-01-01


def test_outlier_timestamps_are_rejects_and_cannot_move_the_split(tmp_path):
  """Hostile timestamps among real ones (the default window, not the
  fixtures' clock): each a reject with its reason, and the cutoff is the
  one the clean data gives."""
  rows = [(u, i, r, REAL_TIME + t) for u, i, r, t in INTERACTIONS]
  bad = rows + [f"1\t2\t3\t{t}\n".encode() for t in BAD_TIMES]
  data_dir = write_recbole(str(tmp_path / "data"), bad, ITEMS, USERS)
  props = {executor.MIN_TIMESTAMP: None, executor.MAX_REJECT_FRACTION: 0.5}
  examples = run_example_gen(tmp_path, data_dir, **props)
  assert examples.get_int_custom_property("rejected_rows") == len(BAD_TIMES)
  assert examples.get_int_custom_property("train_until") == REAL_TIME + 910
  rejects_dir = os.path.join(examples.uri, executor.REJECTS_DIR)
  text = "".join(open(p).read() for p in glob.glob(
      os.path.join(rejects_dir, "rejects*.tsv")))
  for bad_time in BAD_TIMES:
    assert f"\t{bad_time}" in text, bad_time
  assert "plausible window" in text and "not finite" in text


def test_split_gate_stops_an_implausible_split_with_a_report(tmp_path):
  # One early rating far from the rest: the default cutoff (90% of the time
  # span) leaves nearly everything to eval.
  rows = [(1, 1, 5, 0)] + [(u, i, 3, 9000 + 10 * k) for k, (u, i) in
                           enumerate([(1, 2), (1, 3), (2, 1), (2, 2),
                                      (2, 3), (1, 4)])]
  data_dir = write_recbole(str(tmp_path / "data"), rows, ITEMS, USERS)
  with pytest.raises(executor.ImplausibleSplit) as info:
    run_example_gen(tmp_path, data_dir)
  report = str(info.value)
  assert "eval holds" in report and "expected 1%-50%" in report
  assert "set --train-until" in report
  with pytest.raises(executor.ImplausibleSplit, match="training has 2 users"):
    run_example_gen(tmp_path / "users", data_dir,
                    **{executor.TRAIN_UNTIL: 9030,
                       executor.MIN_TRAIN_USERS: 3})


def test_the_examples_format_is_part_of_the_cache_key():
  """TFX keys its cache on execution properties, not on code: the writer's
  format version is one, so a run after the format changes does not reuse
  examples an older writer laid out."""
  from components.movielens_example_gen import component
  example_gen = component.MovieLensExampleGen(data_dir="/data")
  assert (example_gen.exec_properties[executor.EXAMPLES_FORMAT] ==
          executor.EXAMPLES_FORMAT_VERSION)
