"""The local Kalshi-compatible exchange and its traffic generators."""
