"""Comparing runs: the leaderboard of a folder of runs (`leaderboard`, `leaderboard_plot`) and the report of a
Hydra/Optuna sweep (`sweep`: ranking, failures, Optuna plots)."""
