"""Query limits: depth, aliases, fields, tokens and cost, refused before any resolver runs.
One measure of a document (fragments counted once) serves HTTP and WebSocket alike."""
