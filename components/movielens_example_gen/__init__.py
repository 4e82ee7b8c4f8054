"""Custom ExampleGen for MovieLens: join, per-user history, time split."""
