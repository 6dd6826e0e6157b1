"""Simulators of the outside systems MSPclaw talks to, for the demo, the tests and the benchmarks.

Nothing at run time imports this package (the import contracts in ``pyproject.toml`` say so): only
``mspclaw demo`` starts a simulator, and a real deployment talks to the real systems.
"""
