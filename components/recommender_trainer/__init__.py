"""The standard TFX Trainer, told where the item catalogue split lives."""
