"""TF Serving side: model layout, client and local server.

Importing trainer first sets the Keras 2 switch TFRS needs before anything
imports TF, and quiets the notices about versions the lock file pins.
"""
import trainer  # noqa: F401
