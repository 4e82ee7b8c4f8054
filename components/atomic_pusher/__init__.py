"""Pusher whose version directories appear atomically."""
