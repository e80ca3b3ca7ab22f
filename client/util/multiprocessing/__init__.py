"""``ember.util.multiprocessing``: ``multiprocessing.Pool`` on a cluster, as Ray's.

    from ember.util.multiprocessing import Pool   # was: from multiprocessing import Pool
"""

from multiprocessing import JoinableQueue, TimeoutError

from ember.util.multiprocessing.pool import AsyncResult, IMapIterator, Pool

__all__ = ["AsyncResult", "IMapIterator", "JoinableQueue", "Pool", "TimeoutError"]
