"""Runs the pipeline on this machine: LocalDagRunner + Beam DirectRunner."""
import os

from absl import logging
from tfx import v1 as tfx

from pipeline import beam
from pipeline import configs
from pipeline import data
from pipeline import pipeline


def run(config: configs.PipelineConfig) -> None:
  """Runs (or resumes from cache) the whole pipeline with an MLMD store
  under the output folder."""
  os.makedirs(config.output_dir, exist_ok=True)
  logging.info("Running %s: data %s -> serving %s", configs.PIPELINE_NAME,
               config.data_dir, config.serving_model_dir)
  tfx.orchestration.LocalDagRunner().run(pipeline.create_pipeline(
      config,
      train_args=pipeline.train_args(config.train_steps),
      push_destination=pipeline.push_destination(config.serving_model_dir),
      beam_pipeline_args=beam.beam_pipeline_args(
          config.beam_runner, config.beam_workers, config.beam_extra_args),
      input_fingerprint=data.fingerprint(config.data_dir),
      metadata_connection_config=tfx.orchestration.metadata
      .sqlite_metadata_connection_config(config.metadata_path)))
