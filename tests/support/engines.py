"""Fixtures for real Elasticsearch/OpenSearch nodes."""
