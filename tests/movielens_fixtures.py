"""Writers of small MovieLens fixtures in the layouts the loader reads."""
import os


def write_recbole(folder, interactions, items, users):
  """Writes the three recbole-layout tables (lists of tuples) with headers."""
  os.makedirs(folder, exist_ok=True)
  tables = {
      "ml-100k.inter": ("user_id:token\titem_id:token\trating:float\t"
                        "timestamp:float", interactions),
      "ml-100k.item": ("item_id:token\tmovie_title:token_seq\t"
                       "release_year:token\tclass:token_seq", items),
      "ml-100k.user": ("user_id:token\tage:token\tgender:token\t"
                       "occupation:token\tzip_code:token", users),
  }
  for name, (header, rows) in tables.items():
    with open(os.path.join(folder, name), "wb") as f:
      f.write((header + "\n").encode())
      for row in rows:
        f.write(row if isinstance(row, bytes) else
                ("\t".join(map(str, row)) + "\n").encode())
  return folder


def write_examples(path, records):
  """Writes `records` (dicts of raw features) as ExampleGen's gzipped
  tf.Examples, through its own to_example; features a record leaves out
  take neutral values ("" / 0 / an empty list)."""
  import tensorflow as tf

  from components.movielens_example_gen import transforms
  from trainer import features
  neutral = {tf.string: "", tf.int64: 0, tf.float32: 0.0}
  with tf.io.TFRecordWriter(str(path), "GZIP") as writer:
    for given in records:
      record = {key: [] if isinstance(spec, tf.io.VarLenFeature)
                else neutral[spec.dtype]
                for key, spec in features.raw_feature_spec().items()}
      record.update(given)
      writer.write(transforms.to_example(record))
