"""Client and local server over TF Serving's protocol.

Every client test is parametrised by server address: the embedded
`recsys serve` server always, and a real TF Serving when one is given:
TFS_BIN (path to tensorflow_model_server; the test starts it on 127.0.0.1
over the tiny fixture model) or TFS_ADDRESS (host:port of a running one that
serves that model as "recommender"). The client must not tell them apart.
"""
import os
import socket
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
from serving_fixtures import CATALOG
from serving_fixtures import save_version
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import client as client_lib
from serving import server as server_lib
from trainer import contract
from trainer import features


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def model_base(tmp_path_factory):
  base = str(tmp_path_factory.mktemp("models") / "recommender")
  save_version(base, 1, marker=0.0)
  return base


@pytest.fixture(scope="module")
def local_server(model_base):
  server = server_lib.Server("recommender", model_base, grpc_port=0,
                             rest_port=_free_port(), poll_seconds=0.2,
                             max_request_bytes=1 << 20).start()
  yield server
  server.stop()


ADDRESSES = ["local"] + (["tfs"] if os.environ.get("TFS_ADDRESS") or
                          os.environ.get("TFS_BIN") else [])


@pytest.fixture(scope="module")
def real_tf_serving(model_base):
  """Address of a real TF Serving: given, or started from TFS_BIN."""
  if os.environ.get("TFS_ADDRESS"):
    yield os.environ["TFS_ADDRESS"]
    return
  port = _free_port()
  proc = subprocess.Popen([
      os.environ["TFS_BIN"], f"--port={port}", "--rest_api_port=0",
      "--model_name=recommender", f"--model_base_path={model_base}"])
  address = f"127.0.0.1:{port}"
  deadline = time.time() + 60
  while time.time() < deadline:
    try:
      if client_lib.RecommenderClient(address, timeout=2).status():
        break
    except client_lib.ServingError:
      time.sleep(0.5)
  yield address
  proc.terminate()
  proc.wait(timeout=30)


@pytest.fixture(params=ADDRESSES)
def address(request, local_server):
  if request.param == "tfs":
    return request.getfixturevalue("real_tf_serving")
  return f"127.0.0.1:{local_server.grpc_port}"


@pytest.fixture
def client(address):
  c = client_lib.RecommenderClient(address, "recommender", timeout=10)
  yield c
  c.close()


def test_recommend_and_search(client):
  users = [{"user_id": "1", "age": 30, "gender": "F", "occupation": "writer",
            "history": ["3", "4"]}, {}]
  results = client.recommend(users, k=5)
  assert len(results) == 2
  for r in results:
    assert len(r["item_ids"]) == 5 and set(r["item_ids"]) <= set(CATALOG)
    assert r["titles"] == [f"Movie {i}" for i in r["item_ids"]]
    assert r["scores"] == sorted(r["scores"], reverse=True)
  assert len(client.search(["space", ""], k=3)[1]["item_ids"]) == 3
  # This model predates the fast signatures: asking for no reasons falls
  # back to `recommend` instead of failing.
  assert client.recommend(users, k=5, explain=False) == results


def test_the_fast_signature_is_chosen_only_where_it_is_served():
  both = {contract.RECOMMEND, contract.RECOMMEND_UNSEEN,
          contract.RECOMMEND_FAST, contract.RECOMMEND_UNSEEN_FAST}
  choose = contract.recommend_signature
  assert choose(exclude_seen=True, explain=False, served=both) == \
      contract.RECOMMEND_UNSEEN_FAST
  assert choose(exclude_seen=False, explain=False) == contract.RECOMMEND_FAST
  assert choose(exclude_seen=True, explain=True, served=both) == \
      contract.RECOMMEND_UNSEEN
  assert choose(exclude_seen=True, explain=False,
                served={contract.RECOMMEND_UNSEEN}) == \
      contract.RECOMMEND_UNSEEN


def test_status_and_metadata(client):
  assert client.status()[0]["state"] == "AVAILABLE"
  assert {contract.RECOMMEND, contract.SEARCH,
          contract.SERVING_DEFAULT} <= set(client.signatures())


def test_bad_requests_get_tf_serving_codes_and_server_keeps_serving(
    client, address):
  channel = grpc.insecure_channel(address)
  stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

  def call(request):
    with pytest.raises(grpc.RpcError) as info:
      stub.Predict(request, timeout=10)
    return info.value.code()

  good = dict(contract.user_inputs([{"user_id": "1"}]), k=np.int32(3))
  wrong_type = dict(good, age=np.array(["old"], object))
  assert call(contract.predict_request(
      "recommender", "recommend", wrong_type)) == \
      grpc.StatusCode.INVALID_ARGUMENT
  missing = {k: v for k, v in good.items() if k != features.AGE}
  assert call(contract.predict_request("recommender", "recommend",
                                       missing)) == \
      grpc.StatusCode.INVALID_ARGUMENT
  wrong_rank = dict(good, user_id=np.array([["1"]], object))
  assert call(contract.predict_request("recommender", "recommend",
                                       wrong_rank)) == \
      grpc.StatusCode.INVALID_ARGUMENT
  assert call(contract.predict_request("recommender", "recomend", good)) == \
      grpc.StatusCode.INVALID_ARGUMENT
  assert call(contract.predict_request("nope", "recommend", good)) == \
      grpc.StatusCode.NOT_FOUND
  assert call(contract.predict_request("recommender", "recommend", good,
                                       version=999)) == \
      grpc.StatusCode.NOT_FOUND
  huge = dict(good, user_id=np.array(["x" * (2 << 20)], object))
  assert call(contract.predict_request("recommender", "recommend", huge)) == \
      grpc.StatusCode.RESOURCE_EXHAUSTED
  # Still serving after all of that.
  assert len(client.recommend([{"user_id": "1"}], k=2)[0]["item_ids"]) == 2
  channel.close()


def test_client_errors_say_what_to_do(client):
  with pytest.raises(client_lib.ServerUnavailable, match="recsys serve"):
    client_lib.RecommenderClient(f"127.0.0.1:{_free_port()}",
                                 timeout=2).status()
  with pytest.raises(client_lib.ModelNotFound):
    client_lib.RecommenderClient(client.address, "no-such-model").recommend(
        [{"user_id": "1"}])
  with pytest.raises(client_lib.BadRequest, match="INVALID_ARGUMENT"):
    client.predict("recommend", {"user_id": np.array(["1"], object)})


def test_rest_api(local_server):
  rest = client_lib.RestClient(f"http://127.0.0.1:{local_server.rest_port}")
  assert rest.status()[0]["state"] == "AVAILABLE"
  result = rest.recommend([{"user_id": "12", "history": ["1"]}], k=4)[0]
  assert len(result["item_ids"]) == 4
  assert {contract.RECOMMEND, contract.SEARCH} <= set(rest.signatures())
  grpc_client = client_lib.RecommenderClient(
      f"127.0.0.1:{local_server.grpc_port}")
  assert rest.search(["space", "x"], k=3) == grpc_client.search(["space", "x"],
                                                                k=3)
  with pytest.raises(client_lib.BadRequest):
    rest._call(":predict", {"signature_name": "recommend",
                            "inputs": {"user_id": ["1"]}})
  with pytest.raises(client_lib.ModelNotFound):
    client_lib.RestClient(f"http://127.0.0.1:{local_server.rest_port}",
                          "nope").status()


def test_new_versions_are_picked_up_and_old_ones_unloaded(tmp_path):
  base = str(tmp_path / "m")
  save_version(base, 1, marker=0.0)
  server = server_lib.Server("recommender", base, grpc_port=0, rest_port=None,
                             poll_seconds=0.2).start()
  try:
    c = client_lib.RecommenderClient(f"127.0.0.1:{server.grpc_port}")
    before = c.recommend([{"user_id": "1"}], k=1)[0]["scores"][0]
    save_version(base, 2, marker=10.0)
    want = {2: "AVAILABLE", 1: "END"}
    deadline = time.time() + 60
    states = {}
    while time.time() < deadline and states != want:
      time.sleep(0.2)
      states = {s["version"]: s["state"] for s in c.status()}
    assert states == want
    after = c.recommend([{"user_id": "1"}], k=1)[0]["scores"][0]
    assert after == pytest.approx(before + 10.0)
  finally:
    server.stop()


def test_model_config_file_serves_several_models_and_version_labels(
    tmp_path):
  """`recsys serve --model_config_file`: two models on one port, stable and
  canary labels on two versions of one (an A/B split), TF Serving's errors
  for an unknown model or label."""
  from serving import model_config
  ab, other = str(tmp_path / "recommender"), str(tmp_path / "scann")
  save_version(ab, 1, marker=0.0)
  save_version(ab, 2, marker=10.0)
  save_version(ab, 3, marker=20.0)  # newest, but outside the policy
  save_version(other, 7, marker=100.0)
  config = tmp_path / "models.config"
  config.write_text(f"""
model_config_list {{
  config {{
    name: "recommender" base_path: "{ab}" model_platform: "tensorflow"
    model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
    version_labels {{ key: "stable" value: 1 }}
    version_labels {{ key: "canary" value: 2 }}
  }}
  config {{
    name: "recommender_scann" base_path: "{other}"
    model_platform: "tensorflow"
  }}
}}""")
  server = server_lib.Server(models=model_config.read(str(config)),
                             grpc_port=0, rest_port=_free_port(),
                             poll_seconds=0.2).start()
  address = f"127.0.0.1:{server.grpc_port}"
  user = [{"user_id": "1"}]

  def top_score(name, label=None):
    c = client_lib.RecommenderClient(address, name, version_label=label)
    return c.recommend(user, k=1)[0]["scores"][0]

  try:
    stable, canary = top_score("recommender", "stable"), top_score(
        "recommender", "canary")
    assert canary == pytest.approx(stable + 10.0)
    # No label: the newest version the policy serves (2, not 3).
    assert top_score("recommender") == pytest.approx(canary)
    assert top_score("recommender_scann") == pytest.approx(stable + 100.0)
    statuses = client_lib.RecommenderClient(address, "recommender").status()
    assert {s["version"] for s in statuses} == {1, 2}
    with pytest.raises(client_lib.ModelNotFound,
                       match="'recommender', 'recommender_scann'"):
      top_score("recomender")
    with pytest.raises(client_lib.BadRequest, match="label: beta"):
      top_score("recommender", "beta")
    rest = client_lib.RestClient(f"http://127.0.0.1:{server.rest_port}",
                                 "recommender/labels/canary")
    assert rest.recommend(user, k=1)[0]["scores"][0] == pytest.approx(canary)
  finally:
    server.stop()


def test_model_config_errors_are_clear(tmp_path):
  from serving import model_config
  bad = tmp_path / "bad.config"
  bad.write_text("model_config_list { config { nme: 'x' } }")
  with pytest.raises(ValueError, match="not a TF Serving model config"):
    model_config.read(str(bad))
  bad.write_text("""model_config_list { config { name: "a" base_path: "/a"
    model_version_policy { specific { versions: 1 } }
    version_labels { key: "canary" value: 2 } } }""")
  with pytest.raises(ValueError, match="outside its specific policy"):
    model_config.read(str(bad))


def test_deploy_model_config_lists_both_variants():
  from serving import model_config
  specs = model_config.read(os.path.join(
      os.path.dirname(os.path.dirname(__file__)), "serving", "deploy",
      "models.config"))
  assert [s.name for s in specs] == [
      contract.MODEL_NAME, contract.MODEL_NAME + contract.SCANN_SUFFIX]


def _raw_http(port: int, head: bytes, body: bytes = b"", wait: float = 10):
  """Sends raw bytes to the REST port; returns the status line."""
  with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
    s.sendall(head + body)
    return s.recv(200).split(b"\r\n")[0].decode()


def test_rest_limits_answer_with_status_codes(local_server):
  port = local_server.rest_port
  path = b"POST /v1/models/recommender:predict HTTP/1.1\r\nHost: x\r\n"
  assert " 400 " in _raw_http(port, path + b"Content-Length: -5\r\n\r\n")
  assert " 400 " in _raw_http(port, path + b"Content-Length: lots\r\n\r\n")
  assert " 413 " in _raw_http(
      port, path + b"Content-Length: 99999999999\r\n\r\n")
  deep = b"[" * 100000 + b"]" * 100000
  assert " 400 " in _raw_http(
      port, path + f"Content-Length: {len(deep)}\r\n\r\n".encode(), deep)
  assert " 400 " in _raw_http(port, path + b"Content-Length: 2\r\n\r\n",
                              b"[]")
  # A request over the row cap.
  rest = client_lib.RestClient(f"http://127.0.0.1:{port}")
  with pytest.raises(client_lib.BadRequest, match="rows"):
    rest.recommend([{"user_id": str(u)} for u in range(
        local_server.max_request_rows + 1)], k=1)


def test_slow_and_idle_rest_clients_cannot_hold_the_server(tmp_path):
  """Bounded workers and a read deadline: idle connections use up every
  worker, yet a real request is answered once their deadline passes, and
  the idle ones are told 400."""
  base = str(tmp_path / "m")
  save_version(base, 1, marker=0.0)
  server = server_lib.Server("recommender", base, grpc_port=0,
                             rest_port=_free_port(), workers=2,
                             rest_read_timeout=1.0).start()
  try:
    idle = [socket.create_connection(("127.0.0.1", server.rest_port))
            for _ in range(3)]
    idle[0].sendall(b"POST /v1/models/recommender:predict HTTP/1.1\r\n"
                    b"Content-Length: 100\r\n\r\n{")  # then nothing
    start = time.time()
    rest = client_lib.RestClient(f"http://127.0.0.1:{server.rest_port}",
                                 timeout=20)
    assert rest.recommend([{"user_id": "1"}], k=1)[0]["item_ids"]
    assert time.time() - start < 15
    idle[0].settimeout(5)
    assert b" 400 " in idle[0].recv(200)
    for s in idle:
      s.close()
  finally:
    server.stop()


def test_grpc_deadline_and_row_cap(local_server):
  address = f"127.0.0.1:{local_server.grpc_port}"
  c = client_lib.RecommenderClient(address, timeout=10)
  with pytest.raises(client_lib.BadRequest, match="RESOURCE_EXHAUSTED"):
    c.recommend([{"user_id": "1"}] * (local_server.max_request_rows + 1))
  channel = grpc.insecure_channel(address)
  stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
  request = contract.predict_request(
      "recommender", contract.RECOMMEND,
      dict(contract.user_inputs([{"user_id": "1"}]), k=np.int32(3)))
  with pytest.raises(grpc.RpcError) as info:
    stub.Predict(request, timeout=1e-6)
  assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
  assert stub.Predict(request, timeout=10).outputs["item_ids"]


SWAP_UNDER_LOAD = """
import os, shutil, sys, threading, time
from serving_fixtures import save_version
from serving import client as client_lib
from serving import server as server_lib
base = sys.argv[1]
save_version(base, 1, 0.0)
server = server_lib.Server("recommender", base, grpc_port=0, rest_port=None,
                           poll_seconds=0.02).start()
stop, answers, errors = threading.Event(), [], []
def traffic():
  c = client_lib.RecommenderClient(f"127.0.0.1:{server.grpc_port}")
  while not stop.is_set():
    try:
      answers.append(c.recommend([{"user_id": "1"}] * 8, k=5))
    except Exception as e:
      errors.append(repr(e))
threads = [threading.Thread(target=traffic) for _ in range(4)]
for t in threads:
  t.start()
# At least 6 versions, however slow a busy machine saves them.
version, end = 1, time.time() + float(sys.argv[2])
while time.time() < end or version < 6:
  version += 1
  save_version(base, version, float(version))
  for old in range(version - 3):
    shutil.rmtree(os.path.join(base, str(old)), ignore_errors=True)
stop.set()
for t in threads:
  t.join()
server.stop()
print("versions", version, "answers", len(answers), "errors", errors[:3])
"""


def test_swaps_under_load_fail_no_request_and_stop_cleanly(tmp_path):
  """Versions published back to back for 4 s (and at least 6 of them) while
  four clients call: no request fails, and the process exits cleanly right
  after stop(). Before the execution gate and the poller join, the
  swapped-out version's cache clear could run beside a call, and a poll
  still under way at exit aborted the process (2 of 2 runs)."""
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [os.path.dirname(__file__), os.path.dirname(os.path.dirname(
          os.path.abspath(__file__)))]))
  done = subprocess.run(
      [sys.executable, "-c", SWAP_UNDER_LOAD, str(tmp_path / "m"), "4"],
      env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  summary = done.stdout.split()
  assert int(summary[1]) >= 6 and int(summary[3]) > 0, done.stdout
  assert done.stdout.strip().endswith("errors []"), done.stdout
