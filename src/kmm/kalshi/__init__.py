"""Everything that knows Kalshi's wire format: constants, signing, parsing, REST, websocket."""
