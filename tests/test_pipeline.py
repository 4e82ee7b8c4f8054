"""One real pipeline run on a slice of MovieLens 100K, then checks on what it
made: the Transform graph, the pushed SavedModel, caching and the blessing gate.
"""
import dataclasses
import json
import os
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import catalog_refresh
from pipeline import configs
from pipeline import eval_config as eval_config_lib
from pipeline import evaluation
from pipeline import lineage
from pipeline import local_runner
from pipeline import pipeline as pipeline_lib
from pipeline import replay
from pipeline import report
from pipeline import report_sections
from serving import client as client_lib
from serving import explorer
from serving import local_model
from serving import protocol
from serving import server as server_lib
from trainer import contract
from trainer import features
from trainer import index
from trainer import item_item
from trainer import preprocessing
from trainer import tuning
from trainer import validation
from trainer.config import TrainerConfig

_xf = features.transformed_name
SLICE_USERS = 200  # users 1..200 and all their ratings: ~20% of ML-100K
MAX_HISTORY = 20


@pytest.fixture(scope="module")
def sliced_data(movielens_dir, tmp_path_factory):
  from pipeline import data
  return data.slice_users(movielens_dir,
                          str(tmp_path_factory.mktemp("ml-slice")),
                          SLICE_USERS)


@pytest.fixture(scope="module")
def config(sliced_data, text_encoder_dir, tmp_path_factory):
  return configs.PipelineConfig(
      data_dir=sliced_data, output_dir=str(tmp_path_factory.mktemp("run")),
      text_encoder_dir=text_encoder_dir,
      train_steps=60,
      # Not the default 50: Transform and the export's exclusion margin must
      # follow the flag.
      max_history=MAX_HISTORY,
      # A stronger taste weight than the default, so personalized_search's
      # effect is plain to see.
      trainer=TrainerConfig(batch_size=256, search_personalization=1.0),
      min_recall_at_100=0.05, max_rmse=2.0,
      # Beam in one process: 45 s less than two worker processes here;
      # test_example_gen runs ExampleGen (our one Beam code) on two, in
      # make bench-long-tests.
      beam_workers=1)


@pytest.fixture(scope="module")
def first_run(config):
  local_runner.run(config)
  return config


# The explorer's data gives user 1's latest film this title: markup that
# must show as text.
HOSTILE_TITLE = "<script>window.pwned=1</script><b>Bold</b> & Co"


@pytest.fixture(scope="module")
def explorer_data(sliced_data, tmp_path_factory):
  """The slice as the explorer page reads it, user 1's latest film renamed
  to HOSTILE_TITLE (the model's own catalogue is untouched)."""
  out = tmp_path_factory.mktemp("explorer-data")
  ratings = []
  for name in os.listdir(sliced_data):
    with open(os.path.join(sliced_data, name), encoding="utf-8") as f:
      text = f.read()
    if name.endswith(".inter"):
      ratings = [line.split("\t") for line in text.splitlines()[1:]]
    (out / name).write_text(text, encoding="utf-8")
  latest = max((r for r in ratings if r[0] == "1"), key=lambda r: float(r[3]))
  item_file = next(out.glob("*.item"))
  lines = item_file.read_text(encoding="utf-8").splitlines()
  lines = [("\t".join([latest[1], HOSTILE_TITLE] + line.split("\t")[2:])
            if line.split("\t")[0] == latest[1] else line) for line in lines]
  item_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
  return explorer.ExplorerData(str(out))


@pytest.fixture(scope="module")
def served(first_run, explorer_data):
  """`recsys serve` over the first run's pushed model, started once (gRPC,
  REST and the explorer page); it does not poll again, so later pushes
  leave it alone."""
  server = server_lib.Server(contract.MODEL_NAME, first_run.serving_model_dir,
                             grpc_port=0, rest_port=0, poll_seconds=3600,
                             max_request_rows=256,
                             explorer_data=explorer_data).start()
  yield server
  server.stop()


@pytest.fixture(scope="module")
def pushed(first_run):
  """The first run's pushed model, loaded in-process once."""
  return local_model.load_latest(first_run.serving_model_dir)


def _latest(config, component, output):
  return evaluation.latest_output(config.pipeline_root, component, output)


def test_pipeline_pushes_a_blessed_model(first_run):
  versions = os.listdir(first_run.serving_model_dir)
  assert len(versions) == 1 and versions[0].isdigit()
  rows, blessed = evaluation.evaluation_rows(first_run.pipeline_root)
  assert blessed
  # The rating head has an NDCG@10 of its own (within each user's rated
  # items); the retrieval outputs are the ones measured on the catalogue.
  overall = {m: v for s, o, m, v in rows
             if s == "overall" and o in contract.RETRIEVAL_METRIC_NAMES}
  assert set(overall) == set(contract.RETRIEVAL_METRIC_NAMES.values())
  assert 0.05 <= overall["recall@100"] <= 1.0
  # Reported beside the gate, on the same unseen top 100.
  assert 0.0 <= overall["recall@10"] <= overall["recall@100"]
  assert 0.0 <= overall["ndcg@10"] <= overall["recall@10"]
  # The cold-start slices beside it (items nobody rated in training, users
  # who rated nothing there), each with its own count: the two values of
  # each flag cover the eval set.
  count = {s: v for s, o, m, v in rows if m == "example_count"}
  for flag in (features.COLD_ITEM, features.COLD_USER):
    cold = f"{flag}=1"
    assert 0 < count[cold] < count["overall"], flag
    assert count[cold] + count[f"{flag}=0"] == count["overall"]
    assert any(s == cold and m == "recall@100" for s, _, m, _ in rows)


def test_only_the_overall_slice_decides_the_blessing():
  """A slice of a few hundred interactions is reported, never gating."""
  config = eval_config_lib.eval_config(0.1, 2.0, 0.01, 0.1)
  assert [list(s.feature_keys) for s in config.slicing_specs] == [
      [], [features.COLD_ITEM], [features.COLD_USER]]
  thresholds = [c for spec in config.metrics_specs for c in spec.metrics
                if c.HasField("threshold") or c.per_slice_thresholds]
  assert len(thresholds) == 2  # recall@100 and RMSE
  for metric in thresholds:
    assert not metric.HasField("threshold")
    for per_slice in metric.per_slice_thresholds:
      assert [list(s.feature_keys) for s in per_slice.slicing_specs] == [[]]


def test_transform_output(first_run):
  tft_output = tft.TFTransformOutput(
      _latest(first_run, "Transform", "transform_graph"))
  num_users = tft_output.vocabulary_size_by_name(features.USER_VOCAB)
  num_items = tft_output.vocabulary_size_by_name(features.ITEM_VOCAB)
  assert 150 <= num_users <= SLICE_USERS
  raw = {
      features.USER_ID: tf.constant([["1"], ["no-such-user"]]),
      features.ITEM_ID: tf.constant([["50"], ["no-such-item"]]),
      features.RATING: tf.constant([[5.0], [1.0]]),
      features.TIMESTAMP: tf.constant([[1], [2]], tf.int64),
      features.AGE: tf.constant([[24], [40]], tf.int64),
      features.GENDER: tf.constant([["M"], ["F"]]),
      features.OCCUPATION: tf.constant([["technician"], ["astronaut"]]),
      features.TITLE: tf.constant([["Star Wars"], [""]]),
      features.YEAR: tf.constant([[1977], [0]], tf.int64),
      features.GENRES: tf.sparse.from_dense(tf.constant(
          [["Action", "Sci-Fi"], ["", ""]])),
      features.HISTORY: tf.sparse.from_dense(tf.constant(
          [["1", "no-such-item"], ["", ""]])),
  }
  out = tft_output.transform_features_layer()(raw)
  users = out[_xf(features.USER_ID)].numpy()
  assert users[0] < num_users and users[1] == num_users  # OOV bucket
  items = out[_xf(features.ITEM_ID)].numpy()
  assert items[0] < num_items and items[1] == num_items
  genres = out[_xf(features.GENRES)].numpy()
  assert genres.shape == (2, len(features.GENRE_VOCAB))
  assert genres[0].sum() == 2 and genres[1].sum() == 0
  assert genres[0][features.GENRE_VOCAB.index("Sci-Fi")] == 1
  history = out[_xf(features.HISTORY)].numpy()
  assert history.shape == (2, MAX_HISTORY)
  # Right-aligned: newest last, padding in front; unknown item -> OOV.
  assert history[0, -1] == num_items and history[0, -2] < num_items
  assert (history[0, :-2] == preprocessing.HISTORY_PAD).all()
  assert (history[1] == preprocessing.HISTORY_PAD).all()
  assert out[_xf(features.YEAR)].numpy()[1] == 0.0
  assert abs(out[_xf(features.AGE)].numpy()).max() < 5


def test_pushed_model_answers_known_and_unknown_users(first_run):
  model = local_model.load_latest(first_run.serving_model_dir)
  catalog = {str(i) for i in range(1, 1683)}
  known, unknown, empty = model.recommend_batch([
      {"user_id": "1", "age": 24, "gender": "M", "occupation": "technician",
       "history": ["50", "181"]},
      {"user_id": "someone-new", "age": 30, "gender": "F",
       "occupation": "astronaut", "history": ["999999"]},
      {},
  ], k=10)
  for result in (known, unknown, empty):
    assert len(result["item_ids"]) == 10
    assert set(result["item_ids"]) <= catalog
    assert all(result["titles"])
    scores = np.array(result["scores"])
    assert np.isfinite(scores).all() and (np.diff(scores) <= 1e-6).all()
  assert known["item_ids"] != unknown["item_ids"]
  history = known["item_ids"][:3]
  unseen = model.recommend(user_id="1", history=history, k=10,
                           exclude_seen=True)
  assert len(unseen["item_ids"]) == 10
  assert not set(history) & set(unseen["item_ids"])
  # A history as long as --max-history is excluded whole at the largest k.
  long_history = [str(i) for i in range(1, MAX_HISTORY + 1)]
  unseen = model.recommend(user_id="1", history=long_history, k=100,
                           exclude_seen=True)
  assert len(unseen["item_ids"]) == 100
  assert not set(long_history) & set(unseen["item_ids"])
  ratings = model.rank({"user_id": "1"}, ["50", "181", "no-such-item"])
  assert ratings.shape == (3,) and np.isfinite(ratings).all()
  with pytest.raises(KeyError, match="available: .*recommend"):
    model.signature("recomend")


def test_search_and_bad_text(first_run):
  model = local_model.load_latest(first_run.serving_model_dir)
  queries = ["Star Wars", "animated children's film", "", "   ",
             b"caf\xff\xfe", "space " * 3000]
  for result in model.search(queries, k=5):
    assert len(result["item_ids"]) == 5 and all(result["titles"])
    assert np.isfinite(result["scores"]).all()


def test_an_empty_query_browses_what_the_user_is_recommended(first_run):
  """Nothing typed: search lists what a visitor with no profile is
  recommended, personalized search that user's recommendations; the other
  rows of the batch are searched as if alone."""
  model = local_model.load_latest(first_run.serving_model_dir)
  user = {"user_id": "1", "age": 24, "history": ["50", "172", "181"]}
  rules = {"genres": ["Drama", "Comedy"], "exclude": ["1"]}
  visitor = model.recommend_batch([{}], k=7, exclude_seen=False,
                                  rules=rules)[0]
  theirs = model.recommend_batch([user], k=7, exclude_seen=False,
                                 rules=rules)[0]
  alone = model.search(["Star Wars"], k=7, rules=rules)[0]
  browsed, searched, *blank = model.search(
      ["", "Star Wars", "  ", "\u3000\u00a0\t\u200b"], k=7, rules=rules)
  assert searched == alone
  for row in (browsed, *blank):
    assert row["item_ids"] == visitor["item_ids"]
    np.testing.assert_allclose(row["scores"], visitor["scores"], rtol=1e-5)
    assert row["reason"] == ["profile"] * 7
  assert alone["reason"] == ["text"] * 7
  (personal,) = model.search([""], k=7, users=[user], rules=rules)
  assert personal["item_ids"] == theirs["item_ids"]
  assert personal["reason"] == theirs["reason"]
  assert personal["because_item_ids"] == theirs["because_item_ids"]


def test_personalized_search_reorders_what_the_text_matches(first_run):
  model = local_model.load_latest(first_run.serving_model_dir)
  query = "science fiction space adventure"
  matches = set(model.search([query], k=100)[0]["item_ids"])
  fans = [{"user_id": "1", "history": ["50", "172", "181"]},
          {"user_id": "someone-new", "age": 70, "gender": "F",
           "occupation": "retired", "history": ["1", "71", "95"]},
          {}]
  results = model.search([query] * 3, k=10, users=fans)
  for result in results:
    assert len(result["item_ids"]) == 10
    assert (np.diff(result["scores"]) <= 1e-6).all()
    # The text still decides most of the page.
    assert len(set(result["item_ids"]) & matches) >= 5
  # Different users, different orders, and not the plain search order.
  assert results[0]["item_ids"] != results[1]["item_ids"]
  plain = model.search([query], k=10)[0]["item_ids"]
  assert any(r["item_ids"] != plain for r in results)
  with pytest.raises(ValueError, match="2 queries but 1 users"):
    model.search(["a", "b"], users=[{}])


@pytest.mark.long
def test_cached_and_in_graph_text_paths_agree(first_run):
  """embed_items (BERT in the graph) == the index's vectors (BERT cached)."""
  model = local_model.load_latest(first_run.serving_model_dir)
  items = [
      {"item_id": "1", "title": "Toy Story", "year": 1995,
       "genres": ["Animation", "Children's", "Comedy"]},
      {"item_id": "1682", "title": "Scream of Stone (Schrei aus Stein)",
       "year": 1991, "genres": ["Drama"]},
  ]
  in_graph = model.embed_items(items)
  cached = model.loaded.indexed_item_vectors(
      tf.constant(["1", "1682"])).numpy()
  np.testing.assert_allclose(in_graph, cached, atol=1e-4)
  # A brand-new item gets a vector from its text (mixed with the
  # unknown-id row's), shortened to the new-item scale (unit at 1).
  new = model.embed_items([{"item_id": "new-1", "title": "Toy Story 3",
                            "year": 2010, "genres": ["Animation"]}])
  assert np.isclose(np.linalg.norm(new),
                    first_run.trainer.new_item_score_scale, atol=1e-4)


def _eval_examples(config, count):
  """The first `count` eval examples whose every-earlier-item list is longer
  than their history (the ones the Evaluator's protocol is about)."""
  files = tf.io.gfile.glob(os.path.join(_latest(
      config, "MovieLensExampleGen", "examples"), "Split-eval", "*"))
  out = []
  for record in tf.data.TFRecordDataset(files, "GZIP"):
    example = tf.train.Example.FromString(record.numpy())
    feature = example.features.feature
    if (len(feature[features.RATED_BEFORE].bytes_list.value) >
        len(feature[features.HISTORY].bytes_list.value)):
      out.append(example)
    if len(out) == count:
      return out
  raise AssertionError(f"fewer than {count} eval examples outgrow history")


def test_the_evaluator_leaves_out_every_item_rated_before(first_run, pushed):
  """The evaluate signature (the Evaluator's and the Trainer's eval) asks,
  per eval example, whether the rated item is in recommend_unseen's top 100
  with every earlier rating excluded, not just the --max-history newest
  the example's history holds."""
  evaluate = pushed.signature(contract.EVALUATE)
  strings = lambda f: [v.decode() for v in f.bytes_list.value]  # noqa: E731
  for example in _eval_examples(first_run, 8):
    feature = example.features.feature
    user = {"user_id": strings(feature[features.USER_ID])[0],
            "age": feature[features.AGE].int64_list.value[0],
            "gender": strings(feature[features.GENDER])[0],
            "occupation": strings(feature[features.OCCUPATION])[0],
            "history": strings(feature[features.HISTORY])}
    rated_before = strings(feature[features.RATED_BEFORE])
    assert len(user["history"]) == MAX_HISTORY
    assert rated_before[-MAX_HISTORY:] == user["history"]
    top = pushed.recommend_batch([user], k=100, exclude_seen=True,
                                 rules={"exclude": rated_before})[0]
    assert not set(rated_before) & set(top["item_ids"])
    out = evaluate(examples=tf.constant([example.SerializeToString()]))
    item = strings(feature[features.ITEM_ID])[0]
    assert bool(out[contract.EVAL_HIT].numpy()[0]) == (item in top["item_ids"])
    # The best unseen item by history alone is the first hit; listed as
    # rated before, it is no hit at all.
    by_history = pushed.recommend_batch([user], k=1, exclude_seen=True)[0]
    best = by_history["item_ids"][0]
    asked = tf.train.Example()
    asked.CopyFrom(example)
    asked.features.feature[features.ITEM_ID].bytes_list.value[:] = [
        best.encode()]
    del asked.features.feature[features.RATED_BEFORE]
    first = evaluate(examples=tf.constant([asked.SerializeToString()]))
    assert first[contract.EVAL_HIT_AT_10].numpy()[0] == 1.0
    asked.features.feature[features.RATED_BEFORE].bytes_list.value[:] = [
        best.encode()]
    excluded = evaluate(examples=tf.constant([asked.SerializeToString()]))
    assert excluded[contract.EVAL_HIT].numpy()[0] == 0.0


def test_pushed_model_over_grpc_matches_in_process(served, pushed):
  server, local = served, pushed
  remote = client_lib.RecommenderClient(f"127.0.0.1:{server.grpc_port}")
  metadata_calls = []
  read_metadata = remote._signature_defs
  remote._signature_defs = lambda: metadata_calls.append(1) or read_metadata()
  user = {"user_id": "1", "age": 24, "gender": "M",
          "occupation": "technician", "history": ["50"]}
  over_grpc = remote.recommend([user], k=10)[0]
  in_process = local.recommend_batch([user], k=10)[0]
  assert over_grpc["item_ids"] == in_process["item_ids"]
  np.testing.assert_allclose(over_grpc["scores"], in_process["scores"],
                             rtol=1e-5)
  assert remote.search(["Star Wars"], k=3)[0]["item_ids"] == \
      local.search(["Star Wars"], k=3)[0]["item_ids"]
  fan = [{"user_id": "1", "history": ["50"]}]
  assert remote.search(["Star Wars"], k=5, users=fan)[0]["item_ids"] == \
      local.search(["Star Wars"], k=5, users=fan)[0]["item_ids"]
  fast = remote.recommend([user], k=10, explain=False)[0]
  _assert_same_top_k(fast, over_grpc)
  # A Predict with no signature name (TF Serving's serving_default) leaves
  # watched films out, as recommend_unseen does; recommend keeps them.
  inputs = contract.recommend_request([user], 10)[1]
  by_default = protocol.top_k_rows(remote.predict("", inputs))[0]
  assert by_default["item_ids"] == over_grpc["item_ids"]
  assert "50" not in by_default["item_ids"]
  assert "50" in remote.recommend([user], k=100, exclude_seen=False)[0][
      "item_ids"]
  assert contract.BECAUSE_ITEM_IDS not in fast
  # Explanations, similar items and rules travel over gRPC unchanged.
  for key in (contract.BECAUSE_ITEM_IDS, contract.REASON):
    assert over_grpc[key] == in_process[key]
  assert remote.similar(["50"], k=5) == local.similar(["50"], k=5)
  rules = {"genres": ["Comedy"], "years": (1990, 0), "exclude": ["1"]}
  assert remote.recommend([user], k=5, rules=rules) == \
      local.recommend_batch([user], k=5, rules=rules)
  with pytest.raises(client_lib.BadRequest,
                     match="INVALID_ARGUMENT: Unknown genre.*Western"):
    remote.recommend([user], k=5, rules={"genres": ["Polka"]})
  # Every signature's inputs, and which are served, from one metadata call.
  assert len(metadata_calls) == 1
  assert contract.SEARCH in remote.signatures()


def test_similar_items_over_rest_with_optional_inputs_left_out(served,
                                                              pushed):
  """A REST caller sends only item_ids and k: the server fills the empty
  title/year/genres and rules, as it does for older recommend callers."""
  rest = client_lib.RestClient(f"http://127.0.0.1:{served.rest_port}")
  assert rest.similar(["50"], k=5)[0]["item_ids"] == \
      pushed.similar(["50"], k=5)[0]["item_ids"]
  old_style = rest.recommend([{"user_id": "1", "history": ["50"]}], k=3,
                             exclude_seen=False)[0]
  # recommend keeps watched films (the ranking stage can lift Star Wars
  # itself into the top 3): those say `seen`, the rest `history`.
  assert len(old_style["item_ids"]) == 3
  assert old_style["reason"] == ["seen" if item == "50" else "history"
                                 for item in old_style["item_ids"]]


def test_rest_metadata_and_recommend_match_grpc(served):
  """The REST port's metadata is GetModelMetadataResponse's JSON, as TF
  Serving writes it, and the REST client takes the gRPC client's options
  (rules included)."""
  from google.protobuf import json_format
  rest = client_lib.RestClient(f"http://127.0.0.1:{served.rest_port}")
  remote = client_lib.RecommenderClient(f"127.0.0.1:{served.grpc_port}")
  assert rest.signatures() == remote.signatures()
  over_grpc = json_format.MessageToDict(
      remote._signature_defs(), preserving_proto_field_name=True)
  assert rest._call("/metadata")["metadata"]["signature_def"] == over_grpc
  user = {"user_id": "1", "age": 24, "history": ["50", "181"]}
  rules = {"genres": ["Comedy"], "years": (1990, 0), "exclude": ["1"]}
  for options in ({}, {"exclude_seen": True, "rules": rules},
                  {"exclude_seen": True, "rules": rules, "explain": False}):
    (by_rest,), (by_grpc,) = (rest.recommend([user], 5, **options),
                              remote.recommend([user], 5, **options))
    assert set(by_rest) == set(by_grpc)
    _assert_same_top_k(by_rest, by_grpc)
  fan = [{"user_id": "1", "history": ["50"]}]
  for call, args in (("search", (["space"], 5, fan, rules)),
                     ("similar", (["50"], 5, rules))):
    (by_rest,), (by_grpc,) = (getattr(rest, call)(*args),
                              getattr(remote, call)(*args))
    _assert_same_top_k(by_rest, by_grpc)
    assert set(by_rest[contract.ITEM_IDS]).isdisjoint({"1"})


def _random_input(rng, spec, rows, well_typed):
  """A random tensor for an input: right or wrong dtype and rank, sizes
  from empty to over the row cap, hostile strings."""
  wrong = lambda: not well_typed and rng.random() < 0.3  # noqa: E731
  rank = int(rng.integers(0, 4)) if wrong() else spec.shape.rank
  shape = [rows] + [int(rng.choice([0, 1, 3, 60]))
                    for _ in range(max(rank - 1, 0))]
  shape = shape[:rank]
  kind = str(rng.choice(["string", "int64", "int32", "float32", "bool"])
             ) if wrong() else spec.dtype.name
  size = int(np.prod(shape)) if shape else 1
  if kind == "string":
    pool = ["", "50", "1", "no-such-id", "Drama", "Polka", "\u0000",
            "x" * 2000, "\U0001F600", "Sci-Fi", "-1"]
    values = np.array([pool[i] for i in rng.integers(0, len(pool), size)],
                      object)
  elif kind == "bool":
    values = rng.random(size) < 0.5
  elif kind.startswith("int"):
    values = rng.choice([0, 1, -1, 10, 2**31 - 1, -2**31], size).astype(kind)
  else:
    values = rng.choice([0.0, -1.0, np.nan, np.inf, 1e30], size).astype(kind)
  return values.reshape(shape) if shape else values.reshape(())


def test_explorer_page_in_a_browser(served, pushed):
  """Debian's Chromium loads the page from `recsys serve`: a user is typed,
  their history and explained recommendations appear, a query is typed,
  an item is clicked for its neighbours, a new user is described by titles;
  the hostile title stays text."""
  import browser
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support.ui import WebDriverWait
  driver = browser.chromium()

  def shown(css):
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]

  def wait_for(css):
    WebDriverWait(driver, 60).until(lambda d: shown(css))
    return shown(css)

  try:
    driver.get(f"http://127.0.0.1:{served.rest_port}/")
    WebDriverWait(driver, 60).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute(
            "data-ready") == "true")
    version = str(contract.versions(served.manager.base_path)[-1])
    assert version in driver.find_element(By.ID, "version").text

    driver.find_element(By.ID, "user-id").send_keys("1")
    driver.find_element(By.CSS_SELECTOR, "#user-form button").click()
    recommendations = wait_for("#recommendations li")
    user = served.explorer_data.user("1")
    expected = pushed.recommend_batch(
        [dict(user, history=[h["item_id"] for h in user["history"]])],
        k=10, exclude_seen=True)[0]
    assert len(recommendations) == len(expected["titles"]) == 10
    for shown_item, title in zip(recommendations, expected["titles"]):
      assert shown_item.startswith(title + " "), (shown_item, title)
    assert any("because you watched" in r for r in recommendations)
    history = shown("#history li")
    # Shown as the characters it is made of, never run or parsed.
    assert any(h.startswith(HOSTILE_TITLE + " ") for h in history), history
    assert driver.execute_script("return window.pwned") is None
    assert not driver.find_elements(By.CSS_SELECTOR, "#history b, "
                                    "#history script")
    assert version in driver.find_element(By.ID, "recs-caption").text

    driver.find_element(By.ID, "query").send_keys("Star Wars")
    driver.find_element(By.CSS_SELECTOR, "#search-form button").click()
    results = wait_for("#results li")
    assert any(r.startswith("Star Wars") for r in results), results
    assert "ms" in driver.find_element(By.ID, "search-caption").text

    driver.find_elements(By.CSS_SELECTOR, "#results button.item")[0].click()
    WebDriverWait(driver, 60).until(lambda d: "Near" in d.find_element(
        By.ID, "similar-caption").text)
    assert len(shown("#similar li")) == 10

    driver.find_element(By.CSS_SELECTOR, "#new-user summary").click()
    driver.find_element(By.ID, "new-titles").send_keys("Toy Story\nFargo")
    driver.find_element(By.CSS_SELECTOR, "#new-user-form button").click()
    WebDriverWait(driver, 60).until(lambda d: "New user" in d.find_element(
        By.ID, "profile").text)
    assert [h.split("\n")[0] for h in wait_for("#history li")] == [
        "Toy Story", "Fargo"]
    assert "curl" in driver.find_element(By.ID, "last-request").text
  finally:
    browser.close(driver)


def test_every_run_writes_a_self_contained_report(first_run, capsys):
  """The first run's report: from ML Metadata, with the data counts, the
  Evaluator's metrics as the store recorded them, the pushed version, and
  nothing loaded from elsewhere; `recsys report` writes it again."""
  from pipeline import cli
  run = lineage.latest_run(first_run.metadata_path)
  path = report.path_for(first_run.output_dir, run.name)
  assert os.path.exists(path)
  assert cli.main(["report", "--output-dir", first_run.output_dir]) == 0
  assert capsys.readouterr().out.strip() == path
  with open(path, encoding="utf-8") as f:
    page = f.read()
  assert "BLESSED" in page and "No anomalies" in page
  recall = next(v for s, _, m, v in evaluation.metric_rows(
      run.output("Evaluator", "evaluation")) if s == "overall" and
      m == "recall@100")
  assert f"{recall:.4f}" in page
  pushed_version = run.steps["AtomicPusher"].output_properties[
      "pushed_model"]["pushed_version"]
  assert f"pushed version <b>{pushed_version}</b>" in page
  # The ScaNN twin's knobs and its measured recall (the stock model's copy).
  index_settings = index.IndexSettings.read(
      os.path.join(first_run.serving_model_dir, str(pushed_version)))
  assert (f"{index_settings.scann_leaves_to_search} of "
          f"{index_settings.scann_num_leaves} leaves searched" in page)
  assert (f"{index_settings.scann_recall['recall@100']:.4f} of its top 100"
          in page)
  # How the model was trained: the fixture's changes from the defaults.
  assert "batch_size 256" in page and "search_personalization 1.0" in page
  assert page.count("data:image/png;base64,") >= 2  # curve and metrics
  for external in ("http://", "https://", "src='/", 'src="/', "<link"):
    assert external not in page, external


def test_nothing_to_resolve_on_a_first_run_fails_no_step(first_run):
  """A store's first run has no blessed model and no earlier text vectors;
  both resolvers hand over nothing and complete (TFX's own
  LatestArtifactStrategy would fail its node there)."""
  store = lineage.open_store(first_run.metadata_path)
  types = {t.id: t.name for t in store.get_execution_types()}
  resolvers = [e for e in store.get_executions()
               if types[e.type_id].endswith(".Resolver")]
  assert len(resolvers) >= 2
  assert {metadata_store_pb2.Execution.State.Name(e.last_known_state)
          for e in resolvers} <= {"COMPLETE", "CACHED"}
  # The run's record and report name each resolver by its node id (two
  # executions of one component type, once read as one).
  run = lineage.latest_run(first_run.metadata_path)
  with open(report.path_for(first_run.output_dir, run.name),
            encoding="utf-8") as f:
    page = f.read()
  for node in (pipeline_lib.LATEST_BLESSED_RESOLVER,
               pipeline_lib.LATEST_EMBEDDINGS_RESOLVER):
    assert run.steps[node].component == "Resolver", node
    assert run.steps[node].state in ("COMPLETE", "CACHED"), node
    assert node in page, node


def test_replay_reads_each_periods_row_from_its_own_run(first_run):
  """replay's row for a run comes from that run's record in ML Metadata
  (how `bench-continuous --from-outputs` rebuilds an interrupted replay):
  the Trainer's steps, the Evaluator's verdict, the version pushed, and
  recall of the run's own model."""
  runs = lineage.all_runs(first_run.metadata_path)
  assert runs[-1].name == lineage.latest_run(first_run.metadata_path).name
  assert [r.started for r in runs] == sorted(r.started for r in runs)
  log = replay.read_log(first_run)
  period = replay.periods(log, 1, initial_fraction=0.9)[0]
  row = replay.run_row(runs[-1], log, period)
  assert row["steps"] == first_run.train_steps and not row["warm_started"]
  assert row["blessed"]
  assert str(row["pushed_version"]) in os.listdir(first_run.serving_model_dir)
  assert 0 < row["recall@10"] <= row["recall@100"] <= 1
  assert (0 < row["interaction_recall@10"] <= row["interaction_recall@100"]
          <= 1)
  # Per user, new and returning users apart: their mean weighted by head
  # count is the all-users figure.
  during = (log.timestamps > period.train_until) & (
      log.timestamps <= period.eval_until)
  users = len(set(log.users[during]))
  assert 0 < period.new_users < users
  for k in (10, 100):
    new, returning = (row[f"recall@{k}{replay.NEW_USERS}"],
                      row[f"recall@{k}{replay.RETURNING_USERS}"])
    assert row[f"recall@{k}"] == pytest.approx(
        (period.new_users * new + (users - period.new_users) * returning)
        / users)
  # The per-unit values bench-continuous resamples are the columns' own:
  # one per user, one per interaction of the period.
  units = row[replay.UNITS]
  assert len(units[replay.USERS]) == users
  assert units[replay.NEW_USERS].sum() == period.new_users
  assert units["recall@100"].mean() == pytest.approx(row["recall@100"])
  hits = units[replay.PER_INTERACTION + "recall@100"]
  assert len(hits) == len(units[replay.PER_INTERACTION + replay.USERS]) == (
      during.sum())
  assert hits.mean() == pytest.approx(row["interaction_recall@100"])
  # The first run in a store has no earlier text vectors: BERT ran on all.
  assert row["encoded_texts"] > 0 and row["embed_seconds"] > 0


def test_fuzzed_requests_get_status_codes_and_change_nothing(served):
  """Random dtypes, shapes, ranks, sizes and strings for every signature,
  over gRPC and REST: always a TF Serving status code (never INTERNAL or
  UNKNOWN), and afterwards a known request answers exactly as before."""
  server = served
  address = f"127.0.0.1:{server.grpc_port}"
  remote = client_lib.RecommenderClient(address, timeout=60)
  rest = client_lib.RestClient(f"http://127.0.0.1:{server.rest_port}",
                               timeout=60)
  known = [{"user_id": "1", "history": ["50", "181"]}]
  before = remote.recommend(known, k=10)
  version = server.model(contract.MODEL_NAME, None)
  rng = np.random.default_rng(11)
  codes = []
  for case in range(80):
    name = sorted(version.loaded.signatures)[case % len(
        version.loaded.signatures)]
    # A SignatureDef's inputs are a protobuf map: their order changes from
    # one export to the next, so they are drawn in name order to keep the
    # draws the same for every model.
    specs = sorted(
        version.loaded.signatures[name].structured_input_signature[1].items())
    well_typed = rng.random() < 0.4
    rows = int(rng.choice([1, 1, 2, 7, 0, 300]))
    inputs = {key: _random_input(rng, spec, rows, well_typed)
              for key, spec in specs
              if well_typed or rng.random() < 0.9}
    if not well_typed and rng.random() < 0.1:
      inputs["surprise"] = np.array([1])
    try:
      remote.predict(name, inputs)
      codes.append("OK")
    except client_lib.ServingError as e:
      codes.append(e.code.name)
      assert e.code not in (grpc.StatusCode.INTERNAL,
                            grpc.StatusCode.UNKNOWN), (name, e)
    if case % 4 == 0 and all(v.dtype != bool for v in inputs.values()):
      body = {"signature_name": name, "inputs": {
          k: np.asarray(v).tolist() for k, v in inputs.items()}}
      payload = json.loads(json.dumps(body, default=str))
      try:
        rest._call(":predict", payload)
      except client_lib.BadRequest as e:
        assert e.code < 500, (name, e)
      except client_lib.ServerUnavailable:
        # Past 4x the size limit the server stops draining and closes the
        # connection (a 413 it cannot wait to deliver); only then.
        size = len(json.dumps(payload).encode())
        assert size > 4 * server.max_request_bytes, (name, size)
  assert {"INVALID_ARGUMENT", "OK"} <= set(codes), codes
  # Over the row cap is RESOURCE_EXHAUSTED; asked for outright, because
  # whether the draws hold a well-typed request of 300 rows depends on the
  # seed and on how many inputs each signature has.
  with pytest.raises(client_lib.ServingError) as over_cap:
    remote.recommend(known * (server.max_request_rows + 1), k=10)
  assert over_cap.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
  assert remote.recommend(known, k=10) == before
  assert rest.recommend(known, k=10)[0]["item_ids"] == \
      before[0]["item_ids"]


def test_warmup_records_cover_every_signature(pushed):
  from trainer import warmup
  version_dir = pushed.path
  logs = warmup.read_warmup(version_dir)
  assert {l.predict_log.request.model_spec.signature_name for l in logs} == \
      set(pushed.loaded.signatures)
  # The local server replays them on load, as TF Serving does.
  assert server_lib.LoadedVersion(version_dir, 1).warmed_up == len(logs)


def _catalogue(config):
  """item id -> (set of genres, year), read from the data's item file."""
  items, _ = catalog_refresh.read_items(config.data_dir)
  return {i.item_id: (set(i.genres), i.year) for i in items}


def test_recommendations_explain_themselves_faithfully(first_run, pushed):
  model = pushed
  history = ["50", "181", "172", "1", "121"]
  user = {"user_id": "1", "age": 24, "gender": "M",
          "occupation": "technician", "history": history}
  result = model.recommend_batch([user], k=10, exclude_seen=True)[0]
  assert set(result["because_item_ids"]) <= set(history)
  assert result["reason"] == ["history"] * 10
  # The explanation is what drove the score: removing the `because` item
  # lowers each item's retrieval score by at least explanation_min_share of
  # what removing the strongest history item does, and the top item is
  # explained by its strongest.
  towers, loaded = model.loaded.towers, model.loaded
  fields = contract.user_inputs([dict(user, history=[h for h in history
                                                     if h != left])
                                 for left in history] + [user])
  queries = towers.query(**{k: tf.constant(v) for k, v in fields.items()})
  vectors = loaded.indexed_item_vectors(tf.constant(result["item_ids"]))
  scores = tf.matmul(vectors, queries, transpose_b=True).numpy()
  # Leaving item j out also takes away its part of the item-item term.
  settings = index.IndexSettings.read(model.path)
  assert settings.item_item_weight == TrainerConfig().item_item_weight > 0
  drop = scores[:, -1:] - scores[:, :-1] + item_item.served_parts(
      loaded, settings.item_item_weight, settings.item_item_decay, history,
      result["item_ids"])
  because = [history.index(i) for i in result["because_item_ids"]]
  chosen = drop[np.arange(len(because)), because]
  share = settings.explanation_min_share
  assert share == TrainerConfig().explanation_min_share < 1
  # Up to float rounding: the graph scores all left-out queries in one
  # batch, this test in another, so a near-tie may resolve either way.
  assert np.all(chosen >= share * drop.max(axis=1) - 1e-5)
  np.testing.assert_allclose(chosen[0], drop[0].max(), atol=1e-5)
  items, _ = catalog_refresh.read_items(first_run.data_dir)
  titles = {i.item_id: i.title for i in items}
  assert result["because_titles"] == [titles[i]
                                      for i in result["because_item_ids"]]
  # No history: the profile explains, nobody is blamed.
  new = model.recommend(user_id="new", age=30, k=5)
  assert new["reason"] == ["profile"] * 5
  assert new["because_item_ids"] == [""] * 5
  # An id the catalogue does not hold has no title: never named. Alone it
  # leaves the profile to explain; beside known films, they explain.
  unknown = dict(user, history=["no-such-film"])
  (alone,) = model.recommend_batch([unknown], k=5, exclude_seen=True)
  assert alone["reason"] == ["profile"] * 5
  assert alone["because_item_ids"] == [""] * 5
  mixed = dict(user, history=["no-such-film", *history, "nor-this-one"])
  (beside,) = model.recommend_batch([mixed], k=10, exclude_seen=True)
  assert beside["reason"] == ["history"] * 10
  assert set(beside["because_item_ids"]) <= set(history)
  # Search explains with the text; personalised search also names the
  # history item that raised each result most.
  (plain,) = model.search(["space"], k=5)
  assert plain["reason"] == ["text"] * 5
  (personal,) = model.search(["space"], k=5, users=[user])
  assert personal["reason"] == ["seen" if i in history else "text"
                                for i in personal["item_ids"]]
  assert set(personal["because_item_ids"]) <= set(history)


def test_items_already_watched_say_so_and_spend_no_reason(pushed):
  """`recommend` keeps items the user has rated: those are `seen` and name
  themselves (not "because you watched X" on X), and every other item is
  explained exactly as `recommend_unseen` explains it."""
  history = ["50", "181", "172", "1", "121", "100", "98", "174"]
  user = {"user_id": "1", "age": 24, "gender": "M",
          "occupation": "technician", "history": history}
  every = pushed.recommend_batch([user], k=60, exclude_seen=False)[0]
  unseen = pushed.recommend_batch([user], k=60)[0]
  rows = list(zip(every["item_ids"], every["because_item_ids"],
                  every["reason"]))
  seen = [(item, because, reason) for item, because, reason in rows
          if item in history]
  assert seen, "no watched item in the top 60: nothing was checked"
  assert all(because == item and reason == "seen"
             for item, because, reason in seen)
  others = [(item, because) for item, because, reason in rows
            if item not in history]
  assert {reason for item, _, reason in rows if item not in history} == \
      {"history"}
  # The first 20: deeper down, the ranking stage may lift into
  # recommend_unseen's list an item that recommend's retrieval top 100
  # (seen items included) left out.
  assert others[:20] == list(zip(unseen["item_ids"],
                                 unseen["because_item_ids"]))[:20]
  assert all(because != item for item, because in others)
  titles = dict(zip(every["item_ids"], every["titles"]))
  assert [titles[i] for i, _, _ in seen] == [
      t for (i, _, _), t in zip(rows, every["because_titles"])
      if i in history]


def _served_with_term(model, settings, ids, matrix, history):
  """recommend_unseen's top 10 for a user with `history`, checked to score
  each item cosine + weight x `matrix`'s term (numpy: item_item.scores) +
  the ranking stage, and the model's own matrix read back to give the same
  term (served_parts). (the answer, its catalogue rows, cosine + stage of
  every item, the parts [10, H])."""
  loaded = model.loaded
  user = {"user_id": "1", "age": 24, "gender": "M",
          "occupation": "technician", "history": history}
  got = model.recommend_batch([user], k=10, exclude_seen=True)[0]
  inputs = {k: tf.constant(v)
            for k, v in contract.user_inputs([user]).items()}
  query = loaded.towers.query(**inputs).numpy()[0]
  cosine = loaded.indexed_item_vectors(tf.constant(ids)).numpy() @ query
  stage = settings.rerank_weight * loaded.rank(
      **inputs, item_ids=tf.constant([ids]))[contract.SCORES].numpy()[0]
  term = settings.item_item_weight * item_item.scores(
      matrix, [np.array([ids.index(h) for h in history])],
      settings.item_item_decay)[0]
  rows = [ids.index(i) for i in got["item_ids"]]
  np.testing.assert_allclose(got["scores"], (cosine + term + stage)[rows],
                             atol=1e-4)
  parts = item_item.served_parts(loaded, settings.item_item_weight,
                                 settings.item_item_decay, history,
                                 got["item_ids"])
  np.testing.assert_allclose(parts.sum(1), term[rows], atol=1e-5)
  return got, rows, cosine + stage, parts


def test_a_catalogue_above_max_items_serves_the_term_from_pruned_rows(
    first_run, pushed, tmp_path, monkeypatch):
  """Above item_item.MAX_ITEMS (lowered to 1,000 for the fixture's 1,682
  items) the Trainer's fit gives PrunedRows: EASE over the most-rated
  items, each row's strongest entries. Remapped to a catalogue file's
  order, exported, saved and loaded, the model adds exactly that matrix's
  term, and its explanations take a history item's pruned part away."""
  monkeypatch.setattr(item_item, "MAX_ITEMS", 1000)
  config = TrainerConfig(item_item_row_entries=30)
  settings = index.IndexSettings.read(pushed.path)
  examples = _latest(first_run, "MovieLensExampleGen", "examples")
  rows = item_item.fit(
      tf.io.gfile.glob(os.path.join(examples, "Split-train", "*")),
      pushed.loaded.catalog_ids.numpy(), config.item_item_l2,
      pruned=item_item.pruning(config))
  assert isinstance(rows, item_item.PrunedRows)
  kept = (rows.columns < len(rows.columns)).sum(1)
  assert kept.max() == 30 and 0 < (kept > 0).sum() <= 1000
  items, _ = catalog_refresh.read_items(first_run.data_dir)
  ids = [i.item_id for i in items]
  vectors, text_vectors, _ = catalog_refresh.embed_changed(pushed.loaded,
                                                           items)
  matrix = item_item.remap(rows, pushed.loaded.catalog_ids.numpy(),
                           np.array(ids, object))
  catalog_refresh.export_items(pushed.loaded, items, vectors, text_vectors,
                               settings, str(tmp_path / "model"),
                               matrix=matrix)
  model = local_model.PushedModel(str(tmp_path / "model"))
  served = item_item.served_matrix(model.loaded)
  np.testing.assert_array_equal(served.columns, matrix.columns)
  np.testing.assert_array_equal(served.values, matrix.values)
  dense = matrix.csr().toarray()
  history = [ids[i] for i in np.argsort(-np.abs(dense).sum(1))[:5]]
  got, _, _, parts = _served_with_term(model, settings, ids, matrix, history)
  assert (parts == 0).any() and (parts != 0).any()  # pruned pairs and kept
  if parts[0].max() > 1.0:
    assert got["because_item_ids"][0] == history[int(np.argmax(parts[0]))]


def test_recommend_orders_retrievals_top_100_by_the_ranking_stage(pushed):
  """recommend_unseen returns retrieval's top 100 unseen items (the
  index's candidates by the towers' cosine, re-scored with the item-item
  term), ordered by that + rerank_weight x the rating head's predicted
  rating (`rank`), and its top 10 is the head of that list."""
  module = pushed.loaded
  settings = index.IndexSettings.read(pushed.path)
  weight = settings.rerank_weight
  assert weight == TrainerConfig().rerank_weight > 0
  assert settings.item_item_weight > 0
  catalogue = [i.decode() for i in module.catalog_ids.numpy()]
  depth = index.index_depth(settings.index_k, len(catalogue),
                            settings.exclude_margin)
  vectors = module.indexed_item_vectors(tf.constant(catalogue)).numpy()
  users = [{"user_id": str(u), "age": 20 + u, "gender": "MF"[u % 2],
            "occupation": "student",
            "history": [str(h) for h in range(u, 60 + u, 3)]}
           for u in range(1, 9)]
  inputs = {k: tf.constant(v) for k, v in contract.user_inputs(users).items()}
  rules = {k: tf.constant(v)
           for k, v in contract.rule_inputs(len(users)).items()}
  top = module.recommend_unseen_fast(**inputs, k=tf.constant(100), **rules)
  head = module.recommend_unseen_fast(**inputs, k=tf.constant(10), **rules)
  ids = top[contract.ITEM_IDS].numpy()
  np.testing.assert_array_equal(head[contract.ITEM_IDS].numpy(), ids[:, :10])
  ratings = module.rank(**inputs, item_ids=tf.constant(ids))[
      contract.SCORES].numpy()
  queries = module.towers.query(**inputs).numpy()
  scores = top[contract.SCORES].numpy()
  reordered = 0
  for u, user in enumerate(users):
    cosine = vectors @ queries[u]
    candidates = [i for i in np.argsort(-cosine)[:depth]
                  if catalogue[i] not in user["history"]]
    retrieval = cosine[candidates] + item_item.served_parts(
        module, settings.item_item_weight, settings.item_item_decay,
        user["history"], [catalogue[i] for i in candidates]).sum(1)
    retrieval = dict(zip(candidates, retrieval))
    best = sorted(candidates, key=lambda i: -retrieval[i])[:100]
    rows = [catalogue.index(i.decode()) for i in ids[u]]
    assert set(rows) == set(best)
    np.testing.assert_allclose(scores[u],
                               np.array([retrieval[r] for r in rows]) +
                               weight * ratings[u], rtol=1e-4, atol=1e-5)
    assert np.all(np.diff(scores[u]) <= 1e-6)
    reordered += rows != best
  assert reordered, "the ranking stage moved no item for any user"


def test_bench_scenarios_measures_how_varied_and_faithful_reasons_are(
    first_run, pushed):
  """bench/scenarios.py's explanations row on the fixture's model and eval
  users: the counts it plots add up, and the reasons are faithful and at
  least as varied as naming the strongest history item every time."""
  from bench import scenarios
  from trainer import item_embeddings
  examples = _latest(first_run, "MovieLensExampleGen", "examples")
  catalog = item_embeddings.read_catalog(
      os.path.join(examples, "Split-items", "*"))
  ids = [i.decode() for i in catalog[features.ITEM_ID].numpy().reshape(-1)]
  test = validation.Interactions.read(tf.io.gfile.glob(
      os.path.join(examples, "Split-eval", "*")), dict(zip(ids, range(len(
          ids)))))
  users = scenarios.eval_users(test, limit=20)
  settings = index.IndexSettings.read(pushed.path)
  row = scenarios.explanation_row(pushed.loaded, users, settings)
  counts = row["reasons_per_list_counts"]
  assert row["users"] == len(users) == sum(counts["model"]) == sum(
      counts["strongest"]) and row["cases"] == 10 * len(users)
  assert row["faithful_share"] >= 0.9
  assert row["reasons_per_list"] >= row["strongest_item_reasons_per_list"]
  assert row["single_reason_share"] <= row[
      "strongest_item_single_reason_share"]
  # recommend keeps watched films; this model names every one `seen`.
  watched = scenarios.watched_row(pushed.loaded, users)
  assert watched["slots"] == 10 * len(users) == 10 * watched["users"]
  assert 0 <= watched["watched_share"] <= watched["users_with_watched"] <= 1
  assert watched["watched_said_seen"] in (1.0, None)


def _assert_same_top_k(fast, explained):
  for key in (contract.ITEM_IDS, contract.TITLES):
    assert fast[key] == explained[key]
  np.testing.assert_allclose(fast[contract.SCORES],
                             explained[contract.SCORES], rtol=1e-6)


def test_fast_signatures_give_the_same_top_k_without_reasons(pushed):
  users = [{"user_id": "1", "age": 24, "gender": "M",
            "occupation": "technician", "history": ["50", "181", "172"]},
           {"user_id": "new", "age": 30}]
  rules = {"genres": ["Comedy", "Drama"], "years": (1990, 0)}
  for exclude_seen in (False, True):
    for rule in (None, rules):
      explained = pushed.recommend_batch(users, 10, exclude_seen, rule)
      fast = pushed.recommend_batch(users, 10, exclude_seen, rule,
                                    explain=False)
      for with_reasons, without in zip(explained, fast):
        assert set(without) == {contract.ITEM_IDS, contract.TITLES,
                                contract.SCORES}
        _assert_same_top_k(without, with_reasons)
  # Seen items stay out of the fast top k too.
  (unseen,) = pushed.recommend_batch(users[:1], 100, True, explain=False)
  assert not set(unseen[contract.ITEM_IDS]) & {"50", "181", "172"}


def test_similar_items_for_catalogue_and_new_items(first_run, pushed):
  model = pushed
  (star_wars,) = model.similar(["50"], k=10)
  assert len(star_wars["item_ids"]) == 10 and "50" not in star_wars["item_ids"]
  assert np.all(np.diff(star_wars["scores"]) <= 1e-6)
  loaded = model.loaded
  vectors = loaded.indexed_item_vectors(
      tf.constant(["50"] + star_wars["item_ids"])).numpy()
  np.testing.assert_allclose(vectors[1:] @ vectors[0], star_wars["scores"],
                             rtol=1e-4, atol=1e-5)
  # A brand-new item is placed by its text: neighbours, without training.
  (new,) = model.similar([{"item_id": "new-1", "title": "Star Wars: Rogue "
                           "Squadron", "year": 1998,
                           "genres": ["Sci-Fi", "Action"]}], k=10)
  assert len(new["item_ids"]) == 10
  with pytest.raises(ValueError, match="need a title or genres.*new-2"):
    model.similar(["new-2"], k=3)


def test_business_rules_hold_for_random_filters(first_run, pushed):
  """Property test: for random exclusions, genre sets, year ranges and k
  over every top-k signature, no returned item breaks a rule and exactly
  min(k, eligible) come back."""
  model = pushed
  catalogue = _catalogue(first_run)
  genres = sorted({g for gs, _ in catalogue.values() for g in gs})
  rng = np.random.default_rng(7)
  user = {"user_id": "1", "history": ["50", "181", "1"]}
  for case in range(30):
    k = int(rng.integers(1, 101))
    allowed = list(rng.choice(genres, size=int(rng.integers(0, 3)),
                              replace=False))
    low = int(rng.choice([0, 1930, 1960, 1990, 1997]))
    high = int(rng.choice([0, 1950, 1980, 1995, 1998]))
    exclude = list(rng.choice(sorted(catalogue), size=int(
        rng.integers(0, 30)), replace=False)) + ["no-such-item"]
    rules = dict(exclude=exclude, genres=allowed, years=(low, high))
    kind = case % 5
    if kind == 0:
      result = model.recommend(**user, k=k, exclude_seen=False, rules=rules)
      skipped = set()
    elif kind == 1:
      result = model.recommend(**user, k=k, exclude_seen=True, rules=rules)
      skipped = set(user["history"])
    elif kind == 2:
      (result,), skipped = model.search(["war"], k=k, rules=rules), set()
    elif kind == 3:
      (result,), skipped = model.search(["war"], k=k, users=[user],
                                        rules=rules), set()
    else:
      (result,), skipped = model.similar(["50"], k=k, rules=rules), {"50"}

    def ok(item):
      item_genres, year = catalogue[item]
      return (item not in exclude and item not in skipped and
              (not allowed or bool(item_genres & set(allowed))) and
              (not low or year >= low) and (not high or 0 < year <= high))

    eligible = sum(ok(i) for i in catalogue)
    returned = result["item_ids"]
    assert all(ok(i) for i in returned), (case, rules)
    assert len(returned) == min(k, eligible), (case, rules, eligible)
    assert len(set(returned)) == len(returned)
  with pytest.raises(ValueError, match="Unknown genre.*allowed: .*Film-Noir"):
    model.recommend(user_id="1", k=3, rules={"genres": ["Polka"]})


def test_cli_explains_filters_and_finds_similar_items(first_run, capsys):
  from pipeline import cli
  assert cli.main(["check-servable", first_run.serving_model_dir]) == 0
  assert "loads in stock TF Serving" in capsys.readouterr().out
  where = ["--output-dir", first_run.output_dir]
  asked = ["recommend", "--history", "50,181,172", "--explain", "-k", "3"]
  assert cli.main([*asked, *where]) == 0
  out = capsys.readouterr().out
  # Watched films are left out by default, so every item has a reason.
  assert out.count("Because you watched") == 3
  assert not any(f"(item {i:>5})" in out for i in (50, 181, 172))
  assert cli.main([*asked, "--include-seen", *where]) == 0
  out = capsys.readouterr().out
  # A history film that comes back says so instead.
  assert out.count("Because you watched") + out.count(
      "You have watched this before") == 3
  # A known --user is sent with their profile and last 50 rated films, as
  # a live service would send them; flags given win; an unknown user is
  # sent with the flags alone.
  def sent(*flags):
    args = cli.build_parser().parse_args(
        ["recommend", *flags, "--user-data", first_run.data_dir, *where])
    return cli._user(args), capsys.readouterr().err
  known = explorer.ExplorerData(first_run.data_dir).user("1")
  user, said = sent("--user", "1")
  assert "user 1 from" in said and "last 50 of" in said
  assert user == {"user_id": "1", "age": known["age"],
                  "gender": known["gender"],
                  "occupation": known["occupation"],
                  "history": [r["item_id"] for r in known["history"]]}
  assert len(user["history"]) == 50
  user, _ = sent("--user", "1", "--age", "70", "--history", "50,181")
  assert (user["age"], user["history"]) == (70, ["50", "181"])
  user, said = sent("--user", "no-such-user", "--age", "30")
  assert "is not in" in said and user["history"] == [] and user["age"] == 30
  assert cli.main(["similar", "50", "-k", "4", *where]) == 0
  out = capsys.readouterr().out
  assert "Top 4 similar to item 50" in out and "(item    50)" not in out
  with pytest.raises(SystemExit, match="--years"):
    cli.main(["recommend", "--years", "nineties", *where])


def test_scann_twin_has_scann_ops_and_stock_model_has_none(first_run):
  stock = contract.latest_version_dir(first_run.serving_model_dir)
  twin = contract.latest_version_dir(
      contract.scann_twin(first_run.serving_model_dir))
  assert os.path.basename(stock) == os.path.basename(twin)
  from serving import servable_check
  stock_report, twin_report = (servable_check.check(p)
                               for p in (stock, twin))
  # Stock TF Serving 2.16.1 links core TF plus TF Text 2.12.1: exactly the
  # tokenizer's two ops are outside core TF.
  assert stock_report.stock_servable and stock_report.ok
  assert stock_report.tf_text == servable_check.STOCK_TF_TEXT_OPS
  assert not twin_report.stock_servable and twin_report.ok
  assert twin_report.scann and not twin_report.unknown
  # The same ScaNN ops outside the twin would not be pushed.
  moved = dataclasses.replace(twin_report, path=stock)
  assert not moved.ok and "ScaNN ops outside" in moved.lines()[0]
  import scann  # noqa: F401  (a process must import it to load the twin)
  exact = local_model.PushedModel(stock).recommend_batch(
      [{"user_id": str(u)} for u in range(1, 21)], k=10)
  approx = local_model.PushedModel(twin).recommend_batch(
      [{"user_id": str(u)} for u in range(1, 21)], k=10)
  overlap = np.mean([len(set(a["item_ids"]) & set(e["item_ids"])) / 10
                     for a, e in zip(approx, exact)])
  assert overlap >= 0.9
  # The export measured the twin it saved, and both models record the same
  # knobs (a catalogue refresh rebuilds from the stock model's).
  settings = index.IndexSettings.read(twin)
  assert settings == index.IndexSettings.read(stock)
  assert min(settings.scann_recall.values()) >= settings.scann_min_recall


def _artifact(artifact_type, uri, **properties):
  artifact = artifact_type()
  artifact.uri = uri
  for key, value in properties.items():
    setattr(artifact, key, value)
  return artifact


def _trainer_inputs(config):
  """The first run's Examples, TransformGraph and ItemEmbeddings artifacts,
  as the Trainer and Tuner executors receive them."""
  from tfx.types import artifact_utils
  from tfx.types import standard_artifacts

  from components.item_text_embedder.component import ItemEmbeddings
  examples = _artifact(
      standard_artifacts.Examples,
      _latest(config, "MovieLensExampleGen", "examples"),
      split_names=artifact_utils.encode_split_names(
          [features.TRAIN_SPLIT, features.EVAL_SPLIT, features.CATALOG_SPLIT]))
  return {
      "examples": [examples],
      "transform_graph": [_artifact(standard_artifacts.TransformGraph,
                                    _latest(config, "Transform",
                                            "transform_graph"))],
      "item_embeddings": [_artifact(ItemEmbeddings, _latest(
          config, "ItemTextEmbedder", "item_embeddings"))],
  }


@pytest.mark.long
def test_seeded_training_repeats_to_the_digit(first_run, tmp_path):
  """TrainerConfig.seed: the Trainer's own input path (seeded shuffle) and
  model, trained twice from the same artifacts with the default config,
  end with the same weights; another seed does not."""
  from tfx.components.trainer import fn_args_utils

  from components.recommender_trainer import executor as trainer_executor
  from trainer import task
  inputs = _trainer_inputs(first_run)

  def weights(seed):
    custom = dict(first_run.trainer_custom_config(), seed=seed)
    fn_args = fn_args_utils.get_common_fn_args(inputs, {
        "custom_config": json.dumps(custom),
        "train_args": '{"num_steps": 15}', "eval_args": '{"num_steps": 0}'})
    fn_args.custom_config.update(trainer_executor.catalog_locations(inputs))
    fn_args.model_run_dir = str(tmp_path / f"run-{seed}-{time.time()}")
    run = task.train(fn_args)
    assert run.config.seed == seed
    return [w.numpy() for w in run.model.weights]

  first, again, other = weights(1), weights(1), weights(2)
  assert len(first) == len(again) > 10
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  assert any(a.shape == b.shape and not np.array_equal(a, b)
             for a, b in zip(first, other))


@pytest.mark.long
def test_new_items_in_histories_are_read_from_their_text_when_asked(
    first_run, tmp_path):
  """TrainerConfig.new_item_history_text: the Trainer's export reads a
  history item that has no id row from its catalogue text, in recommend
  and in the Evaluator's evaluate; off, every such item is the one
  unknown-id row."""
  from tfx.components.trainer import fn_args_utils

  from components.recommender_trainer import executor as trainer_executor
  from trainer import catalog as catalog_lib
  from trainer import task
  inputs = _trainer_inputs(first_run)
  custom = dict(first_run.trainer_custom_config(), export_scann=False,
                new_item_history_text=True)
  fn_args = fn_args_utils.get_common_fn_args(inputs, {
      "custom_config": json.dumps(custom),
      "train_args": '{"num_steps": 5}', "eval_args": '{"num_steps": 0}'})
  fn_args.custom_config.update(trainer_executor.catalog_locations(inputs))
  fn_args.model_run_dir = str(tmp_path / "run")
  run = task.train(fn_args)
  export_dir = str(tmp_path / "model")
  task.export_models(run.model, run.tft_output, run.catalog, run.config,
                     run.encoder, run.fine_tuned, export_dir)
  model = local_model.PushedModel(export_dir)
  vocabulary = set(catalog_lib.item_vocabulary(run.tft_output))
  new = [i.decode() for i in run.catalog.ids
         if i.decode() not in vocabulary][:2]
  assert len(new) == 2  # first rated in the eval period
  users = [dict(user_id="1", history=[item]) for item in
           (new[0], new[1], "no-such-item", "another-unknown-id")]
  scores = [r["scores"] for r in model.recommend_batch(users, k=20,
                                                       explain=False)]
  # Two new items with their own text: two different users.
  assert not np.allclose(scores[0], scores[1])
  # Ids the catalogue does not know have no text: the unknown-id row.
  np.testing.assert_allclose(scores[2], scores[3], atol=1e-6)
  towers = model.loaded.towers
  assert hasattr(towers, "query_with_history_text")
  # The Evaluator's path reads the same text: an eval example whose
  # history is the first new item.
  record = next(iter(tf.data.TFRecordDataset(tf.io.gfile.glob(os.path.join(
      _latest(first_run, "MovieLensExampleGen", "examples"),
      f"Split-{features.EVAL_SPLIT}", "*")), "GZIP")))
  example = tf.train.Example.FromString(record.numpy())
  history = example.features.feature[features.HISTORY].bytes_list.value
  del history[:]
  history.append(new[0].encode())
  serialized = tf.constant([example.SerializeToString()])
  ids = [i.decode() for i in model.loaded.catalog_ids.numpy()]
  text = model.loaded.item_text_vectors.numpy()[[ids.index(new[0])]]
  with_text = towers.score_examples_with_history_text(
      serialized, tf.constant(text), tf.constant([True]))
  plain = towers.score_examples(serialized)
  assert not np.allclose(with_text[0], plain[0])
  evaluated = model.loaded.evaluate(serialized)
  np.testing.assert_allclose(evaluated[contract.EVAL_RATING], with_text[1],
                             atol=1e-5)


def test_validation_holds_the_newest_release_wave_out_of_its_fit_window(
    first_run):
  """validation.split on the pipeline's own examples: the newest release
  year's items are new to the fit window (no interactions, unknown in
  every history), still asked for in the validation window."""
  from trainer import item_embeddings
  examples = _latest(first_run, "MovieLensExampleGen", "examples")
  catalog = item_embeddings.read_catalog(
      os.path.join(examples, "Split-items", "*"))
  ids = [i.decode() for i in catalog[features.ITEM_ID].numpy().reshape(-1)]
  years = catalog[features.YEAR].numpy().reshape(-1)
  row_of = dict(zip(ids, range(len(ids))))
  train = validation.Interactions.read(tf.io.gfile.glob(
      os.path.join(examples, "Split-train", "*")), row_of)
  held = validation.split(train, years)
  before = train.timestamps < held.cut
  newest = years[train.items[before]].max()
  assert held.wave.any() and (years[held.wave] == newest).all()
  wave_ids = {i.encode() for i, new in zip(ids, held.wave) if new}
  in_wave = lambda rows: held.wave[np.maximum(rows, 0)] & (rows >= 0)  # noqa
  # Dropped from the fit window, kept (as the answer) in validation.
  assert in_wave(train.items[before]).any()
  assert len(held.fit) == int((~in_wave(train.items[before])).sum())
  assert not in_wave(held.fit.items).any()
  assert in_wave(held.held_out.items).sum() == in_wave(
      train.items[~before]).sum() > 0
  assert held.wave[validation.new_item_rows(held.fit, len(ids))].sum() == \
      held.wave.sum()
  # Unknown in every history, raw strings and rows alike.
  for part in (held.fit, held.held_out):
    raw = set(part.raw[features.HISTORY].values.numpy())
    assert not raw & wave_ids
    hidden = {v for v in raw if v.startswith(validation.UNKNOWN_ID)}
    # Unknown ids, each still naming its item's catalogue row (the served
    # model would find a new item's text in its catalogue).
    assert hidden and all(held.wave[validation.text_row(v, row_of)]
                          for v in hidden)
    assert not any(in_wave(h).any() for h in part.histories)
  # A user who rated a wave item before the cut is not offered it again.
  rated = np.flatnonzero(before & in_wave(train.items))[0]
  later = np.flatnonzero(held.held_out.users == train.users[rated])
  if len(later):
    assert held.seen[later[0], train.items[rated]] == 1


def test_tuner_searches_on_the_validation_window_and_feeds_the_trainer(
    first_run, tmp_path):
  """A tiny search (2 trials of 2 seeds, 5 steps) through
  RecommenderTuner's executor over the pipeline's own artifacts; the best
  trial's post-training choices are made again at the Trainer's steps (8
  here); the best values are TrainerConfig fields and the pipeline wires
  them into the Trainer."""
  from tfx.dsl.components.base import base_executor
  from tfx.types import standard_artifacts

  from components.recommender_tuner import executor as tuner_executor
  from pipeline import pipeline as pipeline_lib
  inputs = _trainer_inputs(first_run)
  best = _artifact(standard_artifacts.HyperParameters, str(tmp_path / "best"))
  outputs = {"best_hyperparameters": [best],
             "tuner_results": [_artifact(standard_artifacts.TunerResults,
                                         str(tmp_path / "results"))]}
  os.makedirs(best.uri)
  os.makedirs(outputs["tuner_results"][0].uri)
  custom = dict(first_run.tuner_custom_config(), tune_trials=2,
                tune_seeds=2)
  assert custom["tune_serving_steps"] == first_run.train_steps
  custom["tune_serving_steps"] = 8
  tuner_executor.Executor(base_executor.BaseExecutor.Context(
      tmp_dir=str(tmp_path / "tmp"), unique_id="1")).Do(inputs, outputs, {
          "tuner_fn": pipeline_lib.TUNER_FN,
          "train_args": '{"num_steps": 5}', "eval_args": '{"num_steps": 0}',
          "custom_config": json.dumps(custom)})
  with open(os.path.join(best.uri, "best_hyperparameters.txt")) as f:
    hyperparameters = json.load(f)
  with open(os.path.join(outputs["tuner_results"][0].uri,
                         "tuner_results.json")) as f:
    trials = json.load(f)
  assert len(trials) == 2
  assert all(0.0 <= t["score"] <= 1.0 for t in trials)
  # Every trial in the order it ran, with all its validation metrics; the
  # first is the Trainer's own configuration.
  with open(os.path.join(outputs["tuner_results"][0].uri,
                         "trials.json")) as f:
    ran = json.load(f)
  assert [t["trial_id"] for t in ran["trials"]] == ["0", "1"]
  assert ran["best_trial_id"] == max(trials, key=lambda t: t["score"])[
      "trial_id"]
  for name in ("learning_rate", "embedding_dim", "history_encoder",
               "sampling_correction", "ranking_weight"):
    assert ran["trials"][0]["values"][name] == getattr(first_run.trainer,
                                                       name)
  assert set(ran["trials"][1]["metrics"]) == {
      "val_recall_at_10", "val_recall_at_10_retrieval_order",
      "val_recall_at_100", "val_ndcg_at_10"}
  # The Trainer gets the choices made for the 8-step models.
  again = ran["serving_choice"]
  assert (again["trial_id"], again["steps"], again["trial_steps"]) == (
      ran["best_trial_id"], 8, 5)
  assert set(again["at_steps"]) == set(again["at_trial_steps"]) == set(
      tuning.CHOSEN_AFTER_TRAINING)
  assert {k: hyperparameters["values"][k] for k in again["at_steps"]} == \
      again["at_steps"]
  # trials.json keeps what each trial's own model chose.
  (ran_best,) = [t for t in ran["trials"]
                 if t["trial_id"] == ran["best_trial_id"]]
  assert {k: ran_best["values"][k] for k in again["at_trial_steps"]} == \
      again["at_trial_steps"]
  section = report_sections.tuning_section(ran)
  assert "trained 8 steps" in section
  assert "0 (the Trainer&#x27;s configuration)" in section
  assert "(best: trained)" in section and "<img" in section
  # a column per trial, a row per metric and value
  assert section.count("<tr>") == 1 + 4 + len(ran["trials"][0]["values"])
  tuned = first_run.trainer.with_hyperparameters(hyperparameters)
  # Never longer than the history Transform keeps (--max-history 20 here).
  assert tuned.history_length <= MAX_HISTORY
  assert tuned.history_encoder in ("gru", "attention")
  assert tuned.embedding_dim in (32, 64, 128)
  # Chosen for the trial's model after training, on the same window.
  assert tuned.new_item_score_scale in validation.NEW_ITEM_SCALES
  assert tuned.new_item_text_share in validation.NEW_ITEM_SHARES
  # and whether new items inside histories are read from their text; the
  # Trainer accepts whichever it is.
  assert isinstance(hyperparameters["values"]["new_item_history_text"], bool)
  # and the ranking stage's weight, chosen for each trial's model.
  assert tuned.rerank_weight in validation.RERANK_WEIGHTS
  assert all(t["rerank_weight"] in validation.RERANK_WEIGHTS for t in trials)
  # and the item-item term's weight, L2 and decay: from the Tuner's grid
  # or the Trainer's own values (weight 0: off).
  own = first_run.trainer
  assert tuned.item_item_weight in (0.0, own.item_item_weight,
                                    *validation.ITEM_ITEM_WEIGHTS)
  assert tuned.item_item_l2 in (own.item_item_l2, *validation.ITEM_ITEM_L2S)
  assert tuned.item_item_decay in (own.item_item_decay,
                                   *validation.ITEM_ITEM_DECAYS)
  tuned.check()
  with pytest.raises(ValueError, match="not TrainerConfig fields"):
    first_run.trainer.with_hyperparameters({"values": {"no_such_knob": 1}})

  tuned_pipeline = pipeline_lib.create_pipeline(
      dataclasses.replace(first_run, tune=True),
      train_args=pipeline_lib.train_args(1),
      push_destination=pipeline_lib.push_destination(str(tmp_path / "push")),
      beam_pipeline_args=[])
  ids = [c.id for c in tuned_pipeline.components]
  assert ids.index("RecommenderTuner") < ids.index("RecommenderTrainer")
  trainer = tuned_pipeline.components[ids.index("RecommenderTrainer")]
  assert "hyperparameters" in trainer.inputs


def _executions(config, component):
  """How many times `component` has run (cached or not) in the store."""
  return sum(1 for _, name, _ in _all_executions(config) if name == component)


def _all_executions(config):
  store = metadata_store.MetadataStore(
      metadata_store_pb2.ConnectionConfig(
          sqlite=metadata_store_pb2.SqliteMetadataSourceConfig(
              filename_uri=config.metadata_path)))
  types = {t.id: t.name for t in store.get_execution_types()}
  return [(e.id, types[e.type_id].split(".")[-1], e.last_known_state)
          for e in sorted(store.get_executions(), key=lambda e: e.id)]


def _last_states(config):
  return {name: state for _, name, state in _all_executions(config)}


class Traffic:
  """recommend requests sent in a loop from a thread until stopped, so a
  test can show that no request fails while versions come and go."""

  def __init__(self, address: str):
    self.client = client_lib.RecommenderClient(address)
    self.ok, self.failures, self.versions = 0, [], set()
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._loop, daemon=True)

  def _loop(self):
    while not self._stop.is_set():
      try:
        self.client.recommend([{"user_id": "1", "history": ["50"]}], k=5)
        self.ok += 1
      except client_lib.ServingError as e:
        self.failures.append(str(e))
      self._stop.wait(0.05)

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()


def _metrics_json(config):
  path = os.path.join(_latest(config, "RecommenderTrainer", "model_run"),
                      "metrics.json")
  with open(path) as f:
    return json.load(f)


@pytest.mark.long
def test_baseline_gate_keeps_a_worse_model_out_and_lets_a_better_one_in(
    first_run):
  """The Evaluator compares each candidate with the serving model (the
  latest blessed one): a broken candidate is not pushed and the server keeps
  answering with the old version; a warm-started one is pushed and the
  server swaps to it, with no failed request throughout."""
  import tensorflow_model_analysis as tfma
  server = server_lib.Server(contract.MODEL_NAME, first_run.serving_model_dir,
                             grpc_port=0, rest_port=None,
                             poll_seconds=0.5).start()
  try:
    with Traffic(f"127.0.0.1:{server.grpc_port}") as traffic:
      before = contract.versions(first_run.serving_model_dir)
      # Broken: one step from scratch at a huge learning rate (and without
      # the text tower, whose export costs more time than the point needs).
      broken = dataclasses.replace(
          first_run, train_steps=1, trainer=dataclasses.replace(
              first_run.trainer, warm_start=False, learning_rate=5.0,
              export_scann=False, use_text=False))
      local_runner.run(broken)
      states = _last_states(broken)
      cached = metadata_store_pb2.Execution.CACHED
      for component in ("MovieLensExampleGen", "StatisticsGen",
                        "Transform"):
        assert states[component] == cached, component
      _, blessed = evaluation.evaluation_rows(broken.pipeline_root)
      assert not blessed
      validation = tfma.load_validation_result(
          _latest(broken, "Evaluator", "evaluation"))
      assert any(failure.metric_key.is_diff  # failed against the baseline
                 for per_slice in validation.metric_validations_per_slice
                 for failure in per_slice.failures)
      assert contract.versions(first_run.serving_model_dir) == before
      assert traffic.client.status()[0]["version"] == before[-1]

      # Good: warm-started from the serving model, a few more steps.
      # (Unshrunk, at a gentle rate: the slice's 60-step base is far from
      # converged, and 30 steps from a shrunk copy of it would not be
      # enough; bench-continuous measures the default shrink.)
      good = dataclasses.replace(
          first_run, train_steps=30, max_recall_drop=0.03,
          trainer=dataclasses.replace(
              first_run.trainer, export_scann=False, warm_start_shrink=1.0,
              warm_start_learning_rate=0.002))
      local_runner.run(good)
      _, blessed = evaluation.evaluation_rows(good.pipeline_root)
      assert blessed
      warm = _metrics_json(good)["warm_start"]
      assert warm and warm["copied"] > 0
      assert warm["carried_rows"][features.ITEM_VOCAB] > 1000
      # Same catalogue: every text vector came from the first run's
      # artifact (the resolver's latest), none from BERT.
      with open(os.path.join(_latest(good, "ItemTextEmbedder",
                                     "item_embeddings"),
                             "metadata.json")) as f:
        embedded = json.load(f)
      assert embedded["encoded_texts"] == 0 and embedded["reused_texts"] > 0
      after = contract.versions(first_run.serving_model_dir)
      assert len(after) == len(before) + 1 and after[-1] > before[-1]
      deadline = time.time() + 120
      while time.time() < deadline and (
          traffic.client.status()[0]["version"] != after[-1]):
        time.sleep(0.5)
      assert traffic.client.status()[0]["version"] == after[-1]
      time.sleep(1.0)  # a few requests on the new version too
  finally:
    server.stop()
  assert traffic.ok > 0 and not traffic.failures, traffic.failures[:3]


class _TowersExportedBeforeCandidatesAndText:
  """A loaded model's towers as a version exported before Towers had
  candidates_and_text exposes them: the real functions, minus that one."""

  def __init__(self, towers):
    self.candidates = towers.candidates
    self.encode_text = towers.encode_text


def test_catalog_refresh_embeds_alike_with_one_bert_pass_or_two(
    first_run, pushed):
  items, _ = catalog_refresh.read_items(first_run.data_dir)
  items = items[:20]
  towers = pushed.loaded.towers
  once = catalog_refresh.embed(towers, items)
  twice = catalog_refresh.embed(
      _TowersExportedBeforeCandidatesAndText(towers), items)
  for new, old in zip(once, twice):
    np.testing.assert_allclose(new, old, atol=1e-5)
  # What a refresh keeps for an unchanged row is what it would compute.
  kept, kept_text, embedded = catalog_refresh.embed_changed(pushed.loaded,
                                                            items)
  assert embedded == 0
  assert catalog_refresh.embed_changed(pushed.loaded, items,
                                       reembed_all=True)[2] == len(items)
  # A version that predates stored row texts: every row is embedded.
  assert (catalog_refresh.unchanged_rows(towers, items) == -1).all()
  np.testing.assert_allclose(kept, once[0], atol=1e-5)
  np.testing.assert_allclose(kept_text, once[1], atol=1e-5)


def test_catalog_refresh_serves_a_new_item_without_training(
    first_run, tmp_path):
  data_dir = tmp_path / "data"
  data_dir.mkdir()
  for name in os.listdir(first_run.data_dir):
    with open(os.path.join(first_run.data_dir, name), "rb") as f:
      content = f.read()
    if name.endswith(".item"):
      # A re-titled item, a new one and a malformed one.
      content = content.replace(b"1682\tScream of Stone",
                                b"1682\tScream of Stone II")
      content += ("1683\tBrotherhood of the Lighthouse Keepers\t1998\t"
                  "Drama Mystery\n1684\t \t1998\tDrama\n").encode()
    (data_dir / name).write_bytes(content)
  trainings = _executions(first_run, "RecommenderTrainer")
  before = contract.versions(first_run.serving_model_dir)

  result = catalog_refresh.refresh(str(data_dir),
                                   first_run.serving_model_dir)

  assert _executions(first_run, "RecommenderTrainer") == trainings
  assert [reason for reason, _ in result.rejected] == ["no title"]
  assert result.items == 1683 and result.new_items == 1
  # Only the new and the re-titled item went through the towers.
  assert result.embedded == 2
  after = contract.versions(first_run.serving_model_dir)
  assert after[:-1] == before and result.version_dir.endswith(str(after[-1]))
  model = local_model.load_latest(first_run.serving_model_dir)
  new_item = {"item_id": "1683",
              "title": "Brotherhood of the Lighthouse Keepers",
              "year": 1998, "genres": ["Drama", "Mystery"]}
  found = model.search([new_item["title"]], k=10)[0]["item_ids"]
  assert "1683" in found
  np.testing.assert_allclose(
      model.embed_items([new_item])[0],
      model.loaded.indexed_item_vectors(tf.constant(["1683"])).numpy()[0],
      atol=1e-5)
  old = local_model.PushedModel(os.path.join(
      first_run.serving_model_dir, str(before[-1])))
  kept = tf.constant(["1", "50", "1681"])
  np.testing.assert_array_equal(
      model.loaded.indexed_item_vectors(kept).numpy(),
      old.loaded.indexed_item_vectors(kept).numpy())
  assert "1682" in model.search(["Scream of Stone II (Schrei aus Stein)"],
                                k=10)[0]["item_ids"]
  # Items already served keep their vectors' meaning: same top 10.
  user = {"user_id": "1", "history": ["50"]}
  old_top = old.recommend_batch([user], k=10)[0]["item_ids"]
  new_top = model.recommend_batch([user], k=10)[0]["item_ids"]
  assert len(set(old_top) & set(new_top)) >= 8


def test_the_pushed_model_adds_the_item_item_term_fit_on_its_training_split(
    first_run, pushed):
  """The Trainer fits EASE on its training split into the pushed model
  (TrainerConfig's item-item defaults), and recommend_unseen scores each
  item as cosine + weight x the history's decayed rows of it (+ the ranking
  stage), which moves the list from what the cosine alone serves; leaving
  a history item out in the explanation also takes its part away."""
  config, settings = TrainerConfig(), index.IndexSettings.read(pushed.path)
  assert (settings.item_item_weight, settings.item_item_decay,
          settings.item_item_depth) == (config.item_item_weight,
                                        config.item_item_decay,
                                        config.item_item_depth)
  loaded = pushed.loaded
  ids = [i.decode() for i in loaded.catalog_ids.numpy()]
  examples = _latest(first_run, "MovieLensExampleGen", "examples")
  matrix = item_item.fit(tf.io.gfile.glob(
      os.path.join(examples, "Split-train", "*")), np.array(ids, object),
                         config.item_item_l2)
  np.testing.assert_allclose(item_item.served_matrix(loaded), matrix,
                             atol=1e-5)
  # The history: the five items with the strongest rows (rated in the slice).
  history = [ids[i] for i in np.argsort(-np.abs(matrix).sum(1))[:5]]
  got, rows, without_term, parts = _served_with_term(pushed, settings, ids,
                                                     matrix, history)
  assert not set(got["item_ids"]) & set(history)
  unseen = [r for r in np.argsort(-without_term) if ids[r] not in history]
  assert rows != unseen[:10]
  # The term's strongest history item for the top item is what the
  # explanation names, where the term outweighs the cosine's differences.
  if parts[0].max() > 1.0:
    assert got["because_item_ids"][0] == history[int(np.argmax(parts[0]))]
