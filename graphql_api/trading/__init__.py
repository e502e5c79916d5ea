"""Paper trading: order vocabulary, order entry with pre-trade risk, the matcher and fills.
One cash balance per quote currency; a fill moves cash, positions and orders together."""
