"""Use cases of the KMS API, orchestrated on eventsourcing applications (one per region)."""
