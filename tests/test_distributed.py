"""Real multi-worker training: two worker processes on 127.0.0.1 ports."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from trainer import distribution

HERE = os.path.dirname(os.path.abspath(__file__))


def _ports(n):
  socks = [socket.socket() for _ in range(n)]
  for s in socks:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in socks]
  for s in socks:
    s.close()
  return ports


@pytest.mark.long
def test_two_workers_agree_on_the_final_weights(tmp_path):
  """Two processes each import TensorFlow and form a collective group: about
  a minute on 2 cores, so it runs in make bench-long-tests."""
  workers = [f"127.0.0.1:{p}" for p in _ports(2)]
  procs, outs = [], []
  for index in range(2):
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3",
               CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), HERE]),
               TF_CONFIG=json.dumps({"cluster": {"worker": workers},
                                     "task": {"type": "worker",
                                              "index": index}}))
    out = str(tmp_path / f"worker{index}.npz")
    outs.append(out)
    procs.append(subprocess.Popen(
        [sys.executable, os.path.join(HERE, "multiworker_worker.py"), out],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
  logs = []
  for proc in procs:
    stdout, _ = proc.communicate(timeout=300)
    logs.append(stdout.decode(errors="replace"))
    assert proc.returncode == 0, logs[-1][-3000:]
  assert all("replicas 2" in log for log in logs), logs
  first, second = np.load(outs[0]), np.load(outs[1])
  assert len(first.files) > 10
  for key in first.files:
    np.testing.assert_allclose(first[key], second[key], rtol=1e-5, atol=1e-6)


def test_strategy_names():
  assert distribution.make_strategy("default") is not None
  with pytest.raises(ValueError, match="multi_worker_mirrored"):
    distribution.make_strategy("parameter_server")


def test_only_the_chief_exports(monkeypatch):
  cluster = {"worker": ["a:1", "b:2"]}
  monkeypatch.setenv("TF_CONFIG", json.dumps(
      {"cluster": cluster, "task": {"type": "worker", "index": 1}}))
  assert not distribution.is_chief()
  monkeypatch.setenv("TF_CONFIG", json.dumps(
      {"cluster": cluster, "task": {"type": "worker", "index": 0}}))
  assert distribution.is_chief()
  monkeypatch.delenv("TF_CONFIG")
  assert distribution.is_chief()
