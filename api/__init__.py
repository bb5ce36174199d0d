"""The wire: AWS JSON 1.1 (TrentService) and the ledger's own REST API."""
