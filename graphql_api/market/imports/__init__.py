"""Historical market data from CSV: ticks and daily bars, from a file, stdin or ``importBars``.
One line reader and one end-of-import report, shared by both importers."""
