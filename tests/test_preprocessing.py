"""Transform's numeric scaling: the same data gives the same graph."""
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam

from trainer import preprocessing

SPEC = {"year": tf.io.FixedLenFeature([], tf.int64)}


def _scaled_years(inputs):
  """preprocessing_fn's year scaling (unknown years are 0)."""
  return {"year": inputs["year"], "z": preprocessing.scale_year(inputs["year"])}


def _transform(years, batch_size, temp_dir):
  rows = [{"year": int(y)} for y in years]
  with tft_beam.Context(temp_dir=temp_dir, desired_batch_size=batch_size):
    (out, _), _ = ((rows, tft.DatasetMetadata.from_feature_spec(SPEC))
                   | tft_beam.AnalyzeAndTransformDataset(_scaled_years))
  return {int(r["year"]): r["z"] for r in out}


@pytest.mark.long
def test_z_score_does_not_depend_on_how_beam_batches_the_data(tmp_path):
  """Two pipeline roots over the same data used to get constants one float
  apart (Beam's float accumulation order), and so different models. With
  the tft.mean/tft.var scaling this code used before, this very check
  differed by 3.6e-7 between batches of 1,000 in order and 5,000 shuffled
  (at 30,000 rows it happened to agree); z_score's integer sums cannot."""
  rng = np.random.default_rng(0)
  years = rng.integers(1920, 1999, size=10000)
  years[rng.random(len(years)) < 0.01] = 0  # unknown year
  in_order = _transform(years, 1000, os.path.join(tmp_path, "a"))
  shuffled = _transform(rng.permutation(years), 5000,
                        os.path.join(tmp_path, "b"))
  assert in_order == shuffled  # bit for bit
  known = years[years != 0].astype(np.float64)
  for year, z in in_order.items():
    expected = 0.0 if year == 0 else (year - known.mean()) / known.std()
    assert abs(z - expected) < 1e-6, year


def test_z_score_of_a_constant_column_is_zero_not_nan(tmp_path):
  z = _transform([1995] * 10, 4, str(tmp_path))
  assert z == {1995: 0.0}
