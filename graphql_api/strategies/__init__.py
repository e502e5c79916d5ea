"""Strategies: their definitions, lifecycle (start/stop), signal rules and live engine.
Backtests run the same rules over stored bars, with exact Decimal accounting."""
