"""Runs the pipeline on this machine: LocalDagRunner + Beam DirectRunner."""
import os
from typing import Optional

from absl import logging
from tfx import v1 as tfx

from pipeline import beam
from pipeline import configs
from pipeline import data
from pipeline import pipeline
from pipeline import report


def run(config: configs.PipelineConfig) -> Optional[str]:
  """Runs (or resumes from cache) the whole pipeline with an MLMD store
  under the output folder; returns the path of the run's HTML report
  (written whether the run finished or stopped; None if it could not be)."""
  os.makedirs(config.output_dir, exist_ok=True)
  logging.info("Running %s: data %s -> serving %s", configs.PIPELINE_NAME,
               config.data_dir, config.serving_model_dir)
  try:
    _run_dag(config)
  finally:
    path = report.write_quietly(config.output_dir, config.metadata_path)
  return path


def _run_dag(config: configs.PipelineConfig) -> None:
  tfx.orchestration.LocalDagRunner().run(pipeline.create_pipeline(
      config,
      train_args=pipeline.train_args(config.train_steps),
      push_destination=pipeline.push_destination(config.serving_model_dir),
      beam_pipeline_args=beam.beam_pipeline_args(
          config.beam_runner, config.beam_workers, config.beam_extra_args),
      input_fingerprint=data.fingerprint(config.data_dir),
      metadata_connection_config=tfx.orchestration.metadata
      .sqlite_metadata_connection_config(config.metadata_path)))
