"""The Evaluator's TFMA config: what "good enough to push" means.

The exported `evaluate` signature returns, per eval interaction, the predicted
rating and whether the rated item is in the user's top 100 (and top 10, and
its NDCG@10 gain) of the whole catalogue, every item the user rated before
excluded (eval examples list them all: features.RATED_BEFORE), as
`recommend_unseen` serves them and bench-quality measures. Averaged over
the time-split eval set these are recall@100 (the blessing metric),
recall@10 and NDCG@10.
A model is blessed only if recall@100 and rating RMSE clear their absolute
floors and, when a model is already serving (the latest blessed one, the
`baseline`), are no worse than that model's on the same eval data by more
than the change thresholds: retraining never swaps in a worse model. On the
first run there is no baseline and TFX ignores the change thresholds.
"""
import tensorflow_model_analysis as tfma

from trainer import contract
from trainer import features


def eval_config(min_recall_at_100: float, max_rmse: float,
                max_recall_drop: float, max_rmse_increase: float
                ) -> tfma.EvalConfig:
  """Args: the absolute floors, and how much worse than the baseline (in
  absolute recall@100 and RMSE) a candidate may be."""
  rating, hit = contract.EVAL_RATING, contract.EVAL_HIT
  reported = [contract.EVAL_HIT_AT_10, contract.EVAL_NDCG_AT_10]
  labels = {name: features.LABEL_KEY for name in [rating, hit, *reported]}
  return tfma.EvalConfig(
      # One spec: with a baseline model, TFX adds its twin ("baseline") and
      # names this one "candidate"; without, it drops the change thresholds.
      model_specs=[tfma.ModelSpec(signature_name=contract.EVALUATE,
                                  label_keys=labels)],
      # Overall, and the cold-start slices reported beside it: items
      # nobody rated in the training split (only the text places them) and
      # users who rated nothing there (no id row: profile and eval-period
      # history only). The thresholds gate the overall slice only: a small
      # slice's noise should not decide whether the model ships.
      slicing_specs=[tfma.SlicingSpec()] + [
          tfma.SlicingSpec(feature_keys=[flag])
          for flag in features.COLD_FLAGS],
      metrics_specs=[
          tfma.MetricsSpec(
              output_names=[hit],
              metrics=[tfma.MetricConfig(
                  class_name="MeanPrediction",
                  per_slice_thresholds=_overall(tfma.MetricThreshold(
                      value_threshold=tfma.GenericValueThreshold(
                          lower_bound={"value": min_recall_at_100}),
                      change_threshold=tfma.GenericChangeThreshold(
                          direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                          absolute={"value": -max_recall_drop}))))]),
          # Reported beside the gate, not gated: recall@10 and NDCG@10.
          tfma.MetricsSpec(
              output_names=reported,
              metrics=[tfma.MetricConfig(class_name="MeanPrediction")]),
          tfma.MetricsSpec(
              output_names=[rating],
              metrics=[
                  tfma.MetricConfig(class_name="ExampleCount"),
                  tfma.MetricConfig(class_name="MeanLabel"),
                  tfma.MetricConfig(
                      class_name="RootMeanSquaredError",
                      per_slice_thresholds=_overall(tfma.MetricThreshold(
                          value_threshold=tfma.GenericValueThreshold(
                              upper_bound={"value": max_rmse}),
                          change_threshold=tfma.GenericChangeThreshold(
                              direction=tfma.MetricDirection.LOWER_IS_BETTER,
                              absolute={"value": max_rmse_increase})))),
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


def _overall(threshold: tfma.MetricThreshold) -> list:
  """`threshold` on the overall slice only (MetricConfig.threshold would
  hold every slice to it)."""
  return [tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()],
                                       threshold=threshold)]
