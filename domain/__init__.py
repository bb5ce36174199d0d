"""The KMS domain model: pure, no I/O.

Aggregates (``KmsKey``, ``Alias``), their events, value objects and the key-state rules.
"""
