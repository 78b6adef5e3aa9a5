"""Models: tokenizers, towers behind one encoder interface, the `LightningModule`, checkpoints, export."""
