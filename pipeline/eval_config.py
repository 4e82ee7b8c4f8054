"""The Evaluator's TFMA config: what "good enough to push" means.

The exported `evaluate` signature returns, per eval interaction, the predicted
rating and whether the rated item is in the user's top 100 of the whole
catalogue. Averaged over the time-split eval set the latter is recall@100.
A model is blessed only if recall@100 and rating RMSE clear their thresholds,
so an unfit model never reaches TF Serving.
"""
import tensorflow_model_analysis as tfma

from trainer import contract
from trainer import features


def eval_config(min_recall_at_100: float, max_rmse: float) -> tfma.EvalConfig:
  rating, hit = contract.EVAL_RATING, contract.EVAL_HIT
  return tfma.EvalConfig(
      model_specs=[tfma.ModelSpec(
          signature_name=contract.EVALUATE,
          label_keys={rating: features.LABEL_KEY, hit: features.LABEL_KEY})],
      # Overall only: TFMA applies value thresholds to every slice, and a
      # small slice's noise should not decide whether the model ships.
      slicing_specs=[tfma.SlicingSpec()],
      metrics_specs=[
          tfma.MetricsSpec(
              output_names=[hit],
              metrics=[tfma.MetricConfig(
                  class_name="MeanPrediction",
                  threshold=tfma.MetricThreshold(
                      value_threshold=tfma.GenericValueThreshold(
                          lower_bound={"value": min_recall_at_100})))]),
          tfma.MetricsSpec(
              output_names=[rating],
              metrics=[
                  tfma.MetricConfig(class_name="ExampleCount"),
                  tfma.MetricConfig(class_name="MeanLabel"),
                  tfma.MetricConfig(
                      class_name="RootMeanSquaredError",
                      threshold=tfma.MetricThreshold(
                          value_threshold=tfma.GenericValueThreshold(
                              upper_bound={"value": max_rmse}))),
              ]),
          # Ranking quality of the rating head within each user's eval items.
          tfma.MetricsSpec(
              output_names=[rating],
              query_key=features.USER_ID,
              metrics=[tfma.MetricConfig(
                  class_name="NDCG",
                  config='{"gain_key": "%s", "top_k_list": [5, 10]}'
                  % features.RATING)]),
      ])
