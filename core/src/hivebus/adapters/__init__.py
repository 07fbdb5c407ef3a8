"""The NATS side of the core: what binds the domain's ports to a real bus.

``service`` answers the request subjects (a NATS micro service), ``offers`` asks agents to
take tasks, ``events`` publishes lifecycle events, and ``jetstream`` keeps the state in
JetStream key-value buckets. Nothing in ``hivebus.domain`` imports from here.
"""
