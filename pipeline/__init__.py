"""Builds the TFX pipeline graph and the thin runners and CLI around it.

Importing trainer first sets the Keras 2 switch TFRS needs before anything
imports TF, and quiets the notices about versions the lock file pins.
"""
import trainer  # noqa: F401
