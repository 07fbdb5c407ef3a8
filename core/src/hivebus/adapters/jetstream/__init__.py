"""The state port on JetStream: key-value buckets shared by core replicas.

``state`` is the port itself; ``cas`` writes with compare-and-set, ``follow`` watches the
buckets into each replica's cache, and ``seats`` counts the active agents for ``max_agents``.
"""

from .state import BucketNames, JetStreamState, jetstream_available

__all__ = ["BucketNames", "JetStreamState", "jetstream_available"]
