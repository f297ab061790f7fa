"""The engines: how a layer's events are found (one module per engine)."""
