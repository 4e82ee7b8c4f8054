"""Beam pipeline arguments for each runner, chosen by one flag.

The same TFX graph runs on one machine (DirectRunner, several processes) or on
a cluster (Dataflow, Flink, Spark): only these arguments change. Cluster
runners need their own settings (project, region, job endpoint), passed as
extra arguments; the presets fill in what is fixed for this project. Workers
pick Keras 2 because every package of ours sets TF_USE_LEGACY_KERAS on import.
"""
from typing import List, Sequence

RUNNERS = ("direct", "dataflow", "flink", "spark")

def beam_pipeline_args(runner: str = "direct", workers: int = 2,
                       extra: Sequence[str] = ()) -> List[str]:
  """Arguments for `runner`; `extra` is appended verbatim (and wins)."""
  if runner == "direct":
    args = ["--runner=DirectRunner",
            "--direct_running_mode=multi_processing",
            f"--direct_num_workers={workers}"]
    if workers <= 1:
      args = ["--runner=DirectRunner", "--direct_running_mode=in_memory",
              "--direct_num_workers=1"]
  elif runner == "dataflow":
    args = ["--runner=DataflowRunner", f"--max_num_workers={workers}",
            "--experiments=use_runner_v2",
            "--setup_file=./setup.py"]
  elif runner == "flink":
    args = ["--runner=FlinkRunner", f"--parallelism={workers}",
            "--environment_type=LOOPBACK"]
  elif runner == "spark":
    args = ["--runner=SparkRunner", "--environment_type=LOOPBACK"]
  else:
    raise ValueError(f"Unknown Beam runner {runner!r}; choose one of "
                     f"{', '.join(RUNNERS)}")
  return args + list(extra)
