"""Beam presets, the atomic version publish and the CLI surface."""
import os

import pytest

from components.atomic_pusher.executor import publish_version
from pipeline import beam
from pipeline import cli


def test_direct_runner_uses_processes():
  args = beam.beam_pipeline_args("direct", 2)
  assert "--direct_running_mode=multi_processing" in args
  assert "--direct_num_workers=2" in args
  assert "--direct_running_mode=in_memory" in beam.beam_pipeline_args(
      "direct", 1)


@pytest.mark.parametrize("runner,flag", [
    ("dataflow", "--runner=DataflowRunner"), ("flink", "--runner=FlinkRunner"),
    ("spark", "--runner=SparkRunner")])
def test_cluster_presets(runner, flag):
  args = beam.beam_pipeline_args(runner, 8, ["--project=p"])
  assert args[0] == flag and args[-1] == "--project=p"


def test_unknown_runner_names_the_choices():
  with pytest.raises(ValueError, match="direct, dataflow, flink, spark"):
    beam.beam_pipeline_args("dask")


def test_publish_version_is_atomic_and_monotonic(tmp_path):
  model = tmp_path / "model"
  (model / "variables").mkdir(parents=True)
  (model / "saved_model.pb").write_bytes(b"pb")
  (model / "variables" / "v").write_bytes(b"v")
  base = tmp_path / "serving"
  first = publish_version(str(model), str(base), 100)
  second = publish_version(str(model), str(base), 100)
  assert os.path.basename(first) == "100" and os.path.basename(second) == "101"
  assert sorted(os.listdir(base)) == ["100", "101"]  # no staging leftovers
  assert (base / "101" / "variables" / "v").read_bytes() == b"v"


def test_cli_flags_map_onto_the_config(tmp_path):
  args = cli.build_parser().parse_args([
      "pipeline", "run", "--data-dir", str(tmp_path), "--train-steps", "7",
      "--train-until", "880000000", "--embedding-dim", "16",
      "--use-history", "false", "--beam-arg=--project=x"])
  config = cli.pipeline_config(args)
  assert config.train_steps == 7 and config.train_until == 880000000
  assert config.trainer.embedding_dim == 16
  assert config.trainer.use_history is False
  assert config.beam_extra_args == ("--project=x",)


def test_cli_help_explains_every_option(capsys):
  with pytest.raises(SystemExit):
    cli.build_parser().parse_args(["pipeline", "run", "--help"])
  text = capsys.readouterr().out
  for flag in ("--train-until", "--max-reject-fraction", "--beam-runner",
               "--min-recall-at-100", "--temperature"):
    assert flag in text


@pytest.mark.long
def test_a_stopped_run_explains_itself_in_a_few_lines(tmp_path, capsys,
                                                      text_encoder_dir):
  """Too many malformed rows: a short report and exit status 2 on the
  console, the framework's traceback in run.log only. Run through `recsys
  replay`, whose every period is a pipeline run in its own process: the
  stop comes back from there as itself (`recsys pipeline run` reports
  through the same code in process)."""
  from movielens_fixtures import write_recbole

  from pipeline import stops
  rows = [(1, 1, 5, 880000000 + k) for k in range(10)] + [
      b"1\t1\tnot-a-rating\t880000100\n"] * 5
  data_dir = write_recbole(
      str(tmp_path / "data"), rows, [(1, "Heat", 1995, "Action")],
      [(1, 24, "M", "technician", "0")])
  out = str(tmp_path / "out")
  status = cli.main(["replay", "--periods", "1", "--data-dir", data_dir,
                     "--output-dir", out, "--text-encoder-dir",
                     text_encoder_dir, "--beam-workers", "1"])
  assert status == stops.EXIT_STOPPED
  err = capsys.readouterr().err
  assert "Run stopped: TooManyRejects" in err
  assert "5 of 15 rows rejected" in err and "What to do:" in err
  assert "Traceback" not in err and len(err.splitlines()) < 15
  log = open(os.path.join(out, "run.log")).read()
  assert "Traceback" in log and "TooManyRejects" in log
  assert "pipeline run stopped" in log  # the period's process wrote it


_SLOW_PUSH = """
import sys, time
from tfx.utils import io_utils
from components.atomic_pusher import executor
copy = io_utils.copy_dir
def slow_copy(src, dst):
  copy(src, dst)
  print("copied", flush=True)
  time.sleep(60)  # killed here: the copy is done, the rename is not
io_utils.copy_dir = slow_copy
executor.publish_version(sys.argv[1], sys.argv[2], 200)
"""


@pytest.mark.long
def test_a_push_killed_mid_way_leaves_nothing_a_server_would_load(tmp_path):
  """kill -9 of a process inside publish_version, between the copy and the
  rename: no new version folder appears, the served version stays, and
  the next push publishes and clears the leftover staging folder."""
  import signal
  import subprocess
  import sys

  from trainer import contract
  model = tmp_path / "model"
  (model / "variables").mkdir(parents=True)
  (model / "saved_model.pb").write_bytes(b"pb")
  base = tmp_path / "serving"
  publish_version(str(model), str(base), 100)
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.Popen([sys.executable, "-c", _SLOW_PUSH, str(model),
                           str(base)], cwd=repo, stdout=subprocess.PIPE,
                          text=True)
  assert proc.stdout.readline().strip() == "copied"
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  assert contract.versions(str(base)) == [100]
  assert any(n.startswith(".tmp-") for n in os.listdir(base))
  publish_version(str(model), str(base), 300)
  assert sorted(os.listdir(base)) == ["100", "300"]
