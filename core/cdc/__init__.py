"""Change data capture: normalized change events, the embedded readers, the applier."""
