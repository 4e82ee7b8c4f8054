"""Encodes every catalogue item's text once, for the Trainer to reuse."""
