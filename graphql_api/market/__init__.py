"""Market data: the symbol catalogue, tick validation and ingestion, the simulated feed.
Also historical imports (ticks and bars from CSV) and the technical indicators."""
