"""Evaluation: ranking metrics, full-corpus retrieval evaluation, baselines, the evaluate driver."""
