"""Every pipeline name, path, threshold and step count, with its default.

Runners and the CLI build a PipelineConfig (flags map onto fields one to one)
and hand it to pipeline.create_pipeline; nothing else holds these values.
"""
import dataclasses
import os
from typing import Any, Dict, Optional

from components.movielens_example_gen import layouts
from trainer import contract
from trainer.config import TEXT_ENCODER_DIR_KEY
from trainer.config import TUNE_SEEDS_KEY
from trainer.config import TUNE_SERVING_STEPS_KEY
from trainer.config import TUNE_TRIALS_KEY
from trainer.config import TrainerConfig

PIPELINE_NAME = "movielens-recsys"
# The ML Metadata store of local runs, under the output folder.
METADATA_FILE = "metadata.sqlite"


def serving_model_dir(output_dir: str) -> str:
  """<output_dir>/serving/<model name>: where versions are pushed."""
  return os.path.join(output_dir, "serving", contract.MODEL_NAME)


@dataclasses.dataclass
class PipelineConfig:
  # Where things live. Paths may be local or gs:// (Kubeflow, Dataflow).
  data_dir: str = "data/ml-100k"
  # Pretrained all-MiniLM-L6-v2 (fetched from its registry wheel).
  text_encoder_dir: str = "data/all-MiniLM-L6-v2"
  output_dir: str = "outputs"
  # Ingest.
  train_until: Optional[int] = None
  # Last timestamp of the eval split (default: all after train_until); a
  # replayed period evaluates on that period only (pipeline/replay.py).
  eval_until: Optional[int] = None
  eval_fraction: float = 0.1
  max_reject_fraction: float = 0.01
  max_history: int = 50
  # Plausible interaction times (Unix seconds, inclusive); rows outside are
  # rejects. Default 1995-01-01 to now + 1 day.
  min_timestamp: int = layouts.MIN_TIMESTAMP
  max_timestamp: Optional[int] = layouts.MAX_TIMESTAMP
  # Training.
  train_steps: int = 400
  # Tune hyperparameters first (a Tuner component, trainer/tuning.py): this
  # many random-search trials of tune_steps steps each, on a validation
  # window at the end of the training period; the best feed the Trainer.
  tune: bool = False
  tune_trials: int = 8
  tune_steps: int = 200
  # Seeds (weights and data order) per trial, the validation metrics
  # averaged: one seed moves validation recall@10 by about 0.004 (sd over
  # five seeds, make bench-seeds), as much as most differences between
  # configs, so a one-seed search partly picks its luckiest seed.
  tune_seeds: int = 1
  trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
  # Blessing: the Evaluator refuses a model below/above these.
  min_recall_at_100: float = 0.15
  max_rmse: float = 1.10
  # ... and refuses a model worse than the serving (latest blessed) one on
  # the same eval data by more than these (absolute) changes.
  max_recall_drop: float = 0.01
  max_rmse_increase: float = 0.05
  # Beam: see pipeline/beam.py for the runner presets.
  beam_runner: str = "direct"
  beam_workers: int = 2
  beam_extra_args: tuple = ()
  enable_cache: bool = True

  @property
  def pipeline_root(self) -> str:
    return os.path.join(self.output_dir, "pipeline")

  @property
  def metadata_path(self) -> str:
    return os.path.join(self.output_dir, METADATA_FILE)

  @property
  def serving_model_dir(self) -> str:
    """TF Serving's model_base_path: numbered versions appear inside."""
    return serving_model_dir(self.output_dir)

  def trainer_custom_config(self) -> Dict[str, Any]:
    config = self.trainer.to_dict()
    config[TEXT_ENCODER_DIR_KEY] = self.text_encoder_dir
    return config

  def tuner_custom_config(self) -> Dict[str, Any]:
    return {**self.trainer_custom_config(), TUNE_TRIALS_KEY: self.tune_trials,
            TUNE_SEEDS_KEY: self.tune_seeds,
            TUNE_SERVING_STEPS_KEY: self.train_steps}
