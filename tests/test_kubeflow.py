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
  # KFP v2 compiles the Resolver into two tasks (model, then its blessing).
  resolver = pipeline.LATEST_BLESSED_RESOLVER

  def node(task_name):
    return resolver if task_name.startswith(resolver + "-") else task_name
  assert {node(t) for t in tasks} == set(local_upstream)
  for name, task in tasks.items():
    upstream = {node(t) for t in task.dependent_tasks} - {node(name)}
    assert upstream == local_upstream[node(name)], name
  assert "ItemTextEmbedder" in local_upstream["RecommenderTrainer"]
  # Warm start and the baseline gate: the resolved latest blessed model is
  # the Trainer's base_model and the Evaluator's baseline_model.
  for task, key in (("RecommenderTrainer", "base_model"),
                    ("Evaluator", "baseline_model")):
    artifact = tasks[task].inputs.artifacts[key]
    assert node(artifact.task_output_artifact.producer_task) == resolver
  assert "latest_blessed_model_resolver-model-blessing-resolver" in tasks
  # The next catalogue reuses the last one's text vectors.
  previous = tasks["ItemTextEmbedder"].inputs.artifacts[
      "previous_item_embeddings"].task_output_artifact.producer_task
  assert previous == pipeline.LATEST_EMBEDDINGS_RESOLVER

  images = {e.container.image for e in
            job["pipelineSpec"]["deploymentSpec"]["executors"].values()
            for e in [json_format.ParseDict(
                e, pipeline_spec_pb2.PipelineDeploymentConfig.ExecutorSpec(),
                ignore_unknown_fields=True)]
            if e.HasField("container")}  # resolvers run no container
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
