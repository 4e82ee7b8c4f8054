"""The standard TFX Tuner, told where the item catalogue split lives."""
