"""The ticket pipeline: route, match, run the engine, gate, close, audit (DESIGN section 1).

This layer sits between ``wiring`` and ``playbooks``: it is the one place that combines the
engine, the dispatcher, the store and the connectors, which DESIGN keeps as siblings that do
not import each other.
"""
