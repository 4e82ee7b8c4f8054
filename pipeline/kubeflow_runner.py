"""Compiles the same pipeline to a Kubeflow Pipelines v2 spec (offline).

Per-run knobs are KFP pipeline parameters, so a platform team changes data,
cutoff, steps or serving location per run without rebuilding the image:
  data-dir, train-until, train-args (TrainArgs JSON), push-destination
  (PushDestination JSON).
"""
import dataclasses
import os
from typing import Any, Dict

from google.protobuf import json_format
from tfx import v1 as tfx
from tfx.orchestration import data_types

from pipeline import beam
from pipeline import configs
from pipeline import pipeline

DEFAULT_IMAGE = "ghcr.io/example/tfx-recsys:latest"
# Inside the image (see Dockerfile) the curated schema and the pretrained text
# encoder live here.
IMAGE_SCHEMA_DIR = "/app/schemas"
IMAGE_TEXT_ENCODER_DIR = "/app/data/all-MiniLM-L6-v2"


def _json(message) -> str:
  return json_format.MessageToJson(message, indent=None,
                                   preserving_proto_field_name=True)


def runtime_parameters(config: configs.PipelineConfig) -> Dict[str, Any]:
  """create_pipeline's per-run arguments as KFP runtime parameters, with
  `config`'s values as defaults: config (data-dir, train-until), train_args
  and push_destination."""
  return dict(
      config=dataclasses.replace(
          config, text_encoder_dir=IMAGE_TEXT_ENCODER_DIR,
          data_dir=data_types.RuntimeParameter(
              name="data-dir", ptype=str, default=config.data_dir),
          train_until=data_types.RuntimeParameter(
              name="train-until", ptype=int, default=config.train_until or 0)),
      train_args=data_types.RuntimeParameter(
          name="train-args", ptype=str,
          default=_json(pipeline.train_args(config.train_steps))),
      push_destination=data_types.RuntimeParameter(
          name="push-destination", ptype=str,
          default=_json(pipeline.push_destination(config.serving_model_dir))))


def compile_pipeline(config: configs.PipelineConfig, output_path: str,
                     image: str = None) -> str:
  """Writes the KFP v2 PipelineJob (JSON, or YAML for a .yaml name)."""
  image = image or DEFAULT_IMAGE
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
      config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
          default_image=image, use_pipeline_spec_2_1=True),
      output_dir=os.path.dirname(os.path.abspath(output_path)),
      output_filename=os.path.basename(output_path))
  knobs = runtime_parameters(config)
  parameters = (knobs["config"].data_dir, knobs["config"].train_until,
                knobs["train_args"], knobs["push_destination"])
  runner.run(pipeline.create_pipeline(
      **knobs,
      beam_pipeline_args=beam.beam_pipeline_args(
          config.beam_runner, config.beam_workers, config.beam_extra_args),
      schema_dir=IMAGE_SCHEMA_DIR, kubeflow=True),
             parameter_values={p.name: p.default for p in parameters})
  return output_path
