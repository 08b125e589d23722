"""The read-through cache in front of every NHS-backed provider.

store.py     the CacheStore protocol and the cache document shape
memory.py    bounded in-memory LRU store (the embedded default)
mongo.py     MongoDB store (PyMongo async), used when FACADE_MONGODB_URI is set
policy.py    pure decisions: freshness per type, Cache-Control, keys, restricted patients
read_through.py  the read-through logic shared by every provider (concurrent identical misses
                 share one upstream call: server/nhs/single_flight.py)
provider.py  CachingProvider: wraps any ResourceProvider with the read-through
lifecycle.py opens the configured store inside the app lifespan
"""
