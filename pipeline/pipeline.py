"""create_pipeline: wires the components, nothing else (no I/O, no runner)."""
import os
from typing import List, Optional, Union

from tfx import v1 as tfx
from tfx.orchestration import data_types

from components.anomaly_gate.component import AnomalyGate
from components.atomic_pusher.component import AtomicPusher
from components.curated_schema_gen.component import CuratedSchemaGen
from components.curated_schema_gen.component import content_hash
from components.item_text_embedder.component import ItemEmbeddings
from components.item_text_embedder.component import ItemTextEmbedder
from components.item_text_embedder.component import LatestOrNothing
from components.movielens_example_gen.component import MovieLensExampleGen
from components.recommender_trainer.component import RecommenderTrainer
from components.recommender_tuner.component import RecommenderTuner
from pipeline import code_version
from pipeline import configs
from pipeline.eval_config import eval_config
from trainer import features
from trainer import item_embeddings
from trainer import preprocessing

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "schemas")
SCHEMA_FILE = "schema.pbtxt"
PREPROCESSING_FN = "trainer.preprocessing.preprocessing_fn"
RUN_FN = "trainer.task.run_fn"
TUNER_FN = "trainer.tuning.tuner_fn"
TrainArgs = Union[tfx.proto.TrainArgs, data_types.RuntimeParameter]
LATEST_BLESSED_RESOLVER = "latest_blessed_model_resolver"
LATEST_EMBEDDINGS_RESOLVER = "latest_item_embeddings_resolver"
PushDestination = Union[tfx.proto.PushDestination,
                        data_types.RuntimeParameter]


def train_args(steps: int) -> tfx.proto.TrainArgs:
  return tfx.proto.TrainArgs(splits=[features.TRAIN_SPLIT], num_steps=steps)


def push_destination(base_directory: str) -> tfx.proto.PushDestination:
  """A file-system destination: TF Serving's model base path."""
  return tfx.proto.PushDestination(
      filesystem=tfx.proto.PushDestination.Filesystem(
          base_directory=base_directory))


def _code(sources) -> dict:
  """The custom_config entry that makes TFX re-run a component whose code
  changed (code_version.py)."""
  return {code_version.CODE_FINGERPRINT_KEY: code_version.fingerprint(sources)}


def create_pipeline(config: configs.PipelineConfig,
                    train_args: TrainArgs, push_destination: PushDestination,
                    beam_pipeline_args: List[str],
                    input_fingerprint: Optional[str] = None,
                    metadata_connection_config=None,
                    schema_dir: str = SCHEMA_DIR,
                    kubeflow: bool = False) -> tfx.dsl.Pipeline:
  """The recommender pipeline, identical for every runner but for one
  resolver strategy that Kubeflow's compiler cannot take (`kubeflow`).

  Args:
    config: names, paths, thresholds and hyperparameters. Kubeflow passes
      RuntimeParameters for data_dir and train_until (kubeflow_runner.py).
    train_args: the Trainer's TrainArgs (steps), or a RuntimeParameter
      holding its JSON (Kubeflow).
    push_destination: where Pusher publishes versions (TF Serving's model
      base path), or a RuntimeParameter holding its JSON (Kubeflow).
    beam_pipeline_args: from pipeline.beam.beam_pipeline_args.
    input_fingerprint: content hash of the input files (local runs), so a
      re-run over changed data is not served from the cache.
    metadata_connection_config: ML Metadata store; None lets the orchestrator
      (Kubeflow) provide its own.
    schema_dir: folder with the curated schema.pbtxt.
    kubeflow: compiling for Kubeflow, whose v2 compiler takes only TFX's
      own resolver strategies (see LatestOrNothing).
  """
  not_eval = [features.CATALOG_SPLIT]
  example_gen = MovieLensExampleGen(
      data_dir=config.data_dir, train_until=config.train_until,
      eval_until=config.eval_until,
      eval_fraction=config.eval_fraction,
      max_reject_fraction=config.max_reject_fraction,
      max_history=config.max_history, min_timestamp=config.min_timestamp,
      max_timestamp=config.max_timestamp,
      input_fingerprint=input_fingerprint)
  statistics_gen = tfx.components.StatisticsGen(
      examples=example_gen.outputs["examples"], exclude_splits=not_eval)
  # Kubeflow's schema_dir is the image's copy of this checkout's schemas/
  # (Dockerfile), not readable here: its content hash is this checkout's.
  schema_file = os.path.join(schema_dir, SCHEMA_FILE)
  schema_gen = CuratedSchemaGen(
      schema_file=schema_file, schema_sha256=content_hash(
          schema_file if os.path.exists(schema_file)
          else os.path.join(SCHEMA_DIR, SCHEMA_FILE)))
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs["statistics"],
      schema=schema_gen.outputs["schema"], exclude_splits=not_eval)
  anomaly_gate = AnomalyGate(anomalies=example_validator.outputs["anomalies"])

  transform = tfx.components.Transform(
      examples=example_gen.outputs["examples"],
      schema=schema_gen.outputs["schema"],
      preprocessing_fn=PREPROCESSING_FN,
      splits_config=tfx.proto.SplitsConfig(
          analyze=[features.TRAIN_SPLIT], transform=[]),
      materialize=False,
      custom_config={preprocessing.MAX_HISTORY_KEY: config.max_history,
                     **_code(code_version.TRANSFORM_SOURCES)})
  transform.add_upstream_node(anomaly_gate)

  # The catalogue's frozen text vectors, apart from training; each run
  # reuses the previous artifact's vectors for texts that did not change.
  item_embedder = previous_embeddings = None
  if config.trainer.use_text:
    previous_embeddings = tfx.dsl.Resolver(
        strategy_class=(tfx.dsl.experimental.LatestArtifactStrategy
                        if kubeflow else LatestOrNothing),
        item_embeddings=tfx.dsl.Channel(type=ItemEmbeddings),
    ).with_id(LATEST_EMBEDDINGS_RESOLVER)
    item_embedder = ItemTextEmbedder(
        examples=example_gen.outputs["examples"],
        text_encoder_dir=config.text_encoder_dir,
        max_length=config.trainer.text_max_length,
        kinds=",".join(item_embeddings.needed_kinds(
            config.trainer.search_queries)),
        previous_item_embeddings=previous_embeddings.outputs[
            "item_embeddings"])
    item_embedder.add_upstream_node(anomaly_gate)

  # The model serving now: the Trainer warm-starts from it and the
  # Evaluator compares the candidate with it on the new data.
  latest_blessed = tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
      model_blessing=tfx.dsl.Channel(
          type=tfx.types.standard_artifacts.ModelBlessing),
  ).with_id(LATEST_BLESSED_RESOLVER)

  embeddings = item_embedder.outputs["item_embeddings"] if item_embedder \
      else None
  # Optional: hyperparameters chosen on a validation window carved from the
  # end of the training period (never the eval period).
  tuner = None
  if config.tune:
    tuner = RecommenderTuner(
        tuner_fn=TUNER_FN,
        examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=[features.TRAIN_SPLIT],
                                       num_steps=config.tune_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=0),
        custom_config={**config.tuner_custom_config(),
                       **_code(code_version.TRAINER_SOURCES)},
        item_embeddings=embeddings)

  trainer = RecommenderTrainer(
      run_fn=RUN_FN,
      examples=example_gen.outputs["examples"],
      transform_graph=transform.outputs["transform_graph"],
      schema=schema_gen.outputs["schema"],
      train_args=train_args,
      eval_args=tfx.proto.EvalArgs(splits=[features.EVAL_SPLIT], num_steps=0),
      custom_config={**config.trainer_custom_config(),
                     **_code(code_version.TRAINER_SOURCES)},
      base_model=latest_blessed.outputs["model"],
      hyperparameters=(tuner.outputs["best_hyperparameters"] if tuner
                       else None),
      item_embeddings=embeddings)

  evaluator = tfx.components.Evaluator(
      examples=example_gen.outputs["examples"],
      model=trainer.outputs["model"],
      baseline_model=latest_blessed.outputs["model"],
      example_splits=[features.EVAL_SPLIT],
      eval_config=eval_config(config.min_recall_at_100, config.max_rmse,
                              config.max_recall_drop,
                              config.max_rmse_increase))

  # On the local DirectRunner the Evaluator runs in one process: each worker
  # process would load the candidate and the baseline (BERT inside each),
  # which costs more than a second worker gains at MovieLens sizes
  # (measured with a baseline: 36 s vs 60-79 s on ML-100K, 24 s vs ~64 s
  # on the test slice). Cluster runners keep the pipeline's arguments.
  if "--runner=DirectRunner" in beam_pipeline_args:
    evaluator.with_beam_pipeline_args(["--direct_running_mode=in_memory",
                                       "--direct_num_workers=1"])

  pusher = AtomicPusher(
      model=trainer.outputs["model"],
      model_blessing=evaluator.outputs["blessing"],
      push_destination=push_destination)

  return tfx.dsl.Pipeline(
      pipeline_name=configs.PIPELINE_NAME,
      pipeline_root=config.pipeline_root,
      components=[c for c in (
          example_gen, statistics_gen, schema_gen, example_validator,
          anomaly_gate, transform, previous_embeddings, item_embedder, tuner,
          latest_blessed,
          trainer,
          evaluator, pusher)
                  if c is not None],
      enable_cache=config.enable_cache,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=beam_pipeline_args)
