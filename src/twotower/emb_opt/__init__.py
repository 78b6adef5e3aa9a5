"""Embedding optimisation: steer query vectors through an index towards items a black-box score likes.

    db = FaissVectorDB.from_vectors(vectors)
    runner = Runner(db, Score(my_score), RLUpdate(lr=0.5), prune=TopKPrune(32), k=16)
    log = runner.search(sample_queries(db, 256), iterations=20)
    log.compile_results()          # every item seen, best first

See docs/emb_opt.md.
"""

from twotower.emb_opt.filters import AllOf, ExcludeIds, FieldIn, MaxDistance
from twotower.emb_opt.items import Item, Items
from twotower.emb_opt.log import SearchLog, Trajectory
from twotower.emb_opt.runner import Queries, Runner, SearchInterrupted
from twotower.emb_opt.score import Score
from twotower.emb_opt.updates import NewQueries, RLUpdate, ScoredQueries, TopKContinuous, TopKDiscrete, TopKPrune
from twotower.emb_opt.vector_db import FaissVectorDB, NumpyVectorDB, QueryResults, VectorDB, sample_queries

__all__ = [
    "AllOf",
    "ExcludeIds",
    "FaissVectorDB",
    "FieldIn",
    "Item",
    "Items",
    "MaxDistance",
    "NewQueries",
    "NumpyVectorDB",
    "Queries",
    "QueryResults",
    "RLUpdate",
    "Runner",
    "Score",
    "ScoredQueries",
    "SearchInterrupted",
    "SearchLog",
    "TopKContinuous",
    "TopKDiscrete",
    "TopKPrune",
    "Trajectory",
    "VectorDB",
    "sample_queries",
]
