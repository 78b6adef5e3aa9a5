"""Data: MS MARCO readers, the triplet prepare step and the streaming `LightningDataModule`."""
