"""The whole bot, and its connectors, against the local exchange over loopback sockets."""
