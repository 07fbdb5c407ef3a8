"""``hivebus bench``: figures for the core over a real nats-server, each beside its NATS floor.

Every measuring process (the floor's echo responder and relay, the agents, the delegator) is a
separate process from the core, and every figure is reported as a ratio to what bare nats-py
costs on the same machine in the same run. ``benchmarks/README.md`` says how to read them.

The package imports nothing: ``hivebus`` loads ``hivebus_bench.plugin`` to build its parser, and
only ``hivebus bench`` itself needs the harness (``command``, ``runner``).
"""
