"""Compiles the same pipeline to a Kubeflow Pipelines v2 spec (offline).

Per-run knobs are KFP pipeline parameters, so a platform team changes data,
cutoff, steps or serving location per run without rebuilding the image:
  data-dir, train-until, train-args (TrainArgs JSON), push-destination
  (PushDestination JSON).
"""
import dataclasses
import json
import os

from tfx import v1 as tfx
from tfx.orchestration import data_types

from pipeline import beam
from pipeline import configs
from pipeline.pipeline import create_pipeline
from trainer import features

DEFAULT_IMAGE = "ghcr.io/example/tfx-recsys:latest"
# Inside the image (see Dockerfile) the curated schema and the pretrained text
# encoder live here.
IMAGE_SCHEMA_DIR = "/app/schemas"
IMAGE_TEXT_ENCODER_DIR = "/app/data/all-MiniLM-L6-v2"


def runtime_config(config: configs.PipelineConfig) -> configs.PipelineConfig:
  """A copy of `config` whose per-run fields are KFP runtime parameters."""
  return dataclasses.replace(
      config,
      text_encoder_dir=IMAGE_TEXT_ENCODER_DIR,
      data_dir=data_types.RuntimeParameter(
          name="data-dir", ptype=str, default=config.data_dir),
      train_until=data_types.RuntimeParameter(
          name="train-until", ptype=int, default=config.train_until or 0),
      train_steps=data_types.RuntimeParameter(
          name="train-args", ptype=str, default=json.dumps(
              {"splits": [features.TRAIN_SPLIT],
               "num_steps": config.train_steps})),
      serving_dir=data_types.RuntimeParameter(
          name="push-destination", ptype=str, default=json.dumps(
              {"filesystem": {"base_directory": config.serving_model_dir}})))


def compile_pipeline(config: configs.PipelineConfig, output_path: str,
                     image: str = None) -> str:
  """Writes the KFP v2 PipelineJob (JSON, or YAML for a .yaml name)."""
  image = image or DEFAULT_IMAGE
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
      config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
          default_image=image, use_pipeline_spec_2_1=True),
      output_dir=os.path.dirname(os.path.abspath(output_path)),
      output_filename=os.path.basename(output_path))
  knobs = runtime_config(config)
  defaults = {p.name: p.default for p in (
      knobs.data_dir, knobs.train_until, knobs.train_steps, knobs.serving_dir)}
  runner.run(create_pipeline(
      knobs,
      beam_pipeline_args=beam.beam_pipeline_args(
          config.beam_runner, config.beam_workers, config.beam_extra_args),
      schema_dir=IMAGE_SCHEMA_DIR), parameter_values=defaults)
  return output_path
