"""FC integration: the FC-facing OPC UA server, the durable outbox, crash recovery."""
