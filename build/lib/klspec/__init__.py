"""klspec: an executable specification of KL divergence.

- :mod:`klspec.spec` — the clause catalog, strategies, property checks and runner.
- :mod:`klspec.reference` — an implementation exact in every numerical regime.
"""

__version__ = "0.1.0"
