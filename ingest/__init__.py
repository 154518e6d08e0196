"""Ingest: read tweets from the X API, a data file or stdin, attribute brands, publish to Pub/Sub."""
