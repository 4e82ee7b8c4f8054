"""Server-side batching: same answers as unbatched, isolated failures."""
import os
from concurrent import futures

import numpy as np
import pytest
from serving_fixtures import save_version

from serving import batching
from serving import client as client_lib
from serving import server as server_lib
from trainer import contract
from trainer import features

DEPLOY = os.path.join(os.path.dirname(__file__), "..", "serving", "deploy")


def test_parses_the_deployed_tf_serving_batching_file():
  params = batching.BatchingParameters.from_file(
      os.path.join(DEPLOY, "batching_parameters.txt"))
  assert params == batching.BatchingParameters(
      max_batch_size=64, batch_timeout_micros=2000, max_enqueued_batches=256,
      num_batch_threads=2, pad_variable_length_inputs=True)
  assert batching.BatchingParameters.from_text(
      "max_batch_size { value: 8 }\npad_variable_length_inputs: false"
  ) == batching.BatchingParameters(max_batch_size=8,
                                   pad_variable_length_inputs=False)


def test_merge_pads_histories_with_empty_ids():
  a = contract.user_inputs([{"user_id": "1", "history": ["5"]}])
  b = contract.user_inputs([{"user_id": "2", "history": ["6", "7", "8"]}])
  merged = batching.merge([a, b])
  assert merged[features.HISTORY].tolist() == [["5", "", ""],
                                               ["6", "7", "8"]]
  assert merged[features.USER_ID].tolist() == ["1", "2"]


def _runner(calls):
  def run(inputs):
    calls.append(len(inputs[features.USER_ID]))
    if "bad" in inputs[features.USER_ID].tolist():
      raise ValueError("bad user")
    k = int(inputs["k"])
    return {"echo": np.repeat(inputs[features.USER_ID][:, None], k, axis=1)}
  return run


def test_requests_share_calls_and_a_failure_stays_with_its_request():
  batcher = batching.Batcher(batching.BatchingParameters(
      max_batch_size=16, batch_timeout_micros=200_000, num_batch_threads=1))
  calls = []
  run = _runner(calls)
  users = ["a", "b", "bad", "c", "d", "e"]

  def one(user):
    inputs = dict(contract.user_inputs([{"user_id": user}]), k=np.int32(2))
    try:
      return batcher.run(run, "model", inputs)["echo"].tolist()
    except ValueError as e:
      return str(e)

  with futures.ThreadPoolExecutor(len(users)) as pool:
    results = list(pool.map(one, users))
  batcher.stop()
  assert results == [[[u, u]] if u != "bad" else "bad user" for u in users]
  # One merged call that failed, then each request alone.
  assert calls[0] == len(users) and len(calls) == 1 + len(users)


def test_different_k_is_never_merged():
  batcher = batching.Batcher(batching.BatchingParameters(
      batch_timeout_micros=100_000, num_batch_threads=1))
  calls = []
  run = _runner(calls)

  def one(k):
    inputs = dict(contract.user_inputs([{"user_id": "u"}]), k=np.int32(k))
    return batcher.run(run, "model", inputs)["echo"].shape

  with futures.ThreadPoolExecutor(4) as pool:
    shapes = list(pool.map(one, [1, 2, 1, 2]))
  batcher.stop()
  assert shapes == [(1, 1), (1, 2), (1, 1), (1, 2)]
  assert sorted(calls) == [2, 2]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
  base = str(tmp_path_factory.mktemp("batching") / "recommender")
  save_version(base, 1, marker=0.0)
  plain = server_lib.Server("recommender", base, grpc_port=0,
                            rest_port=None).start()
  batched = server_lib.Server(
      "recommender", base, grpc_port=0, rest_port=None, workers=16,
      batching_parameters=batching.BatchingParameters(
          max_batch_size=8, batch_timeout_micros=20_000)).start()
  yield plain, batched
  plain.stop()
  batched.stop()


def test_batched_server_answers_like_the_unbatched_one(servers):
  plain, batched = servers
  users = [{"user_id": "u" * (i % 7), "history": ["1"] * (i % 4)}
           for i in range(24)]

  def ask(server, user):
    c = client_lib.RecommenderClient(f"127.0.0.1:{server.grpc_port}",
                                     timeout=10)
    try:
      return c.recommend([user], k=3 + len(user["history"]) % 2)[0]
    finally:
      c.close()

  with futures.ThreadPoolExecutor(16) as pool:
    got = list(pool.map(lambda u: ask(batched, u), users))
  want = [ask(plain, u) for u in users]
  for g, w in zip(got, want):
    assert (g["item_ids"], g["titles"]) == (w["item_ids"], w["titles"])
    np.testing.assert_allclose(g["scores"], w["scores"], rtol=1e-5)
  # Bad requests are still refused one by one, and the server keeps serving.
  c = client_lib.RecommenderClient(f"127.0.0.1:{batched.grpc_port}")
  with pytest.raises(client_lib.BadRequest):
    c.predict("recommend", {"user_id": np.array(["1"], object)})
  assert len(c.recommend([{"user_id": "1"}], k=2)[0]["item_ids"]) == 2
  c.close()
  # And requests really were merged.
  assert batched.batcher.batches_run < batched.batcher.requests_run


def test_batch_threads_survive_racing_for_the_same_requests():
  """Two batch threads waiting on the same oldest request: the one that
  loses the race starts over instead of dying with an empty batch."""
  batcher = batching.Batcher(batching.BatchingParameters(
      max_batch_size=4, batch_timeout_micros=1000, num_batch_threads=2))
  calls = []
  run = _runner(calls)

  def one(i):
    inputs = dict(contract.user_inputs([{"user_id": f"u{i}"}]), k=np.int32(1))
    return batcher.run(run, "model", inputs)["echo"].tolist()

  with futures.ThreadPoolExecutor(16) as pool:
    results = list(pool.map(one, range(400)))
  assert results == [[[f"u{i}"]] for i in range(400)]
  assert all(t.is_alive() for t in batcher._threads)
  assert sum(calls) == 400
  batcher.stop()
