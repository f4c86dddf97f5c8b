"""Choosing what to trade: discovery and scoring of open markets (pure, in
:mod:`kmm.select.discovery`) and the shell that reads them from the venue
(:mod:`kmm.select.reader`)."""
