"""The Kubeflow compile: offline, valid PipelineSpec, same graph as local."""
import json

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline import beam
from pipeline import configs
from pipeline import kubeflow_runner
from pipeline import pipeline


def test_compiles_offline_to_the_same_graph(tmp_path):
  config = configs.PipelineConfig(data_dir="gs://b/data",
                                  output_dir="gs://b/out", train_steps=123)
  path = kubeflow_runner.compile_pipeline(
      config, str(tmp_path / "pipeline.json"), image="registry/recsys:1")
  job = json.load(open(path))
  spec = json_format.ParseDict(job["pipelineSpec"],
                               pipeline_spec_pb2.PipelineSpec(),
                               ignore_unknown_fields=True)

  local = pipeline.create_pipeline(
      config, pipeline.train_args(config.train_steps),
      pipeline.push_destination(config.serving_model_dir),
      beam.beam_pipeline_args())
  local_upstream = {c.id: {u.id for u in c.upstream_nodes}
                    for c in local.components}
  tasks = spec.root.dag.tasks
  assert set(tasks) == set(local_upstream)
  for name, task in tasks.items():
    assert set(task.dependent_tasks) == local_upstream[name], name
  assert "ItemTextEmbedder" in local_upstream["RecommenderTrainer"]

  images = {e.container.image for e in
            job["pipelineSpec"]["deploymentSpec"]["executors"].values()
            for e in [json_format.ParseDict(
                e, pipeline_spec_pb2.PipelineDeploymentConfig.ExecutorSpec(),
                ignore_unknown_fields=True)]}
  assert images == {"registry/recsys:1"}

  params = spec.root.input_definitions.parameters
  assert set(params) == {"data-dir", "train-until", "train-args",
                         "push-destination"}
  defaults = job["runtimeConfig"]["parameterValues"]
  assert defaults["data-dir"] == "gs://b/data"
  assert json.loads(defaults["train-args"])["num_steps"] == 123
  assert json.loads(defaults["push-destination"])["filesystem"][
      "base_directory"] == "gs://b/out/serving/recommender"
  assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://b/out/pipeline"


def test_yaml_output_is_a_kfp_pipeline_spec(tmp_path):
  path = kubeflow_runner.compile_pipeline(
      configs.PipelineConfig(), str(tmp_path / "pipeline.yaml"))
  spec = json_format.ParseDict(yaml.safe_load(open(path)),
                               pipeline_spec_pb2.PipelineSpec(),
                               ignore_unknown_fields=True)
  assert "RecommenderTrainer" in spec.root.dag.tasks
  assert spec.schema_version == "2.1.0"
