"""Training: `train(cfg)` wires a composed config into Lightning; callbacks, schedules and throughput."""
