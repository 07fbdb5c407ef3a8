"""The scenarios, each a function of the harness; ``hivebus_bench.runner`` runs them in order.

``nats_floor`` measures bare NATS, ``core`` the in-memory core step by step, ``variants`` the
cores with fewer plugins or quieter logs, ``jetstream`` the core with its state in JetStream.
"""
