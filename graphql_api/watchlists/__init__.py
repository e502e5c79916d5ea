"""Watchlists: a user's named, ordered lists of symbols (:mod:`.lists`), and the live
stream of the latest quote of every symbol on one list, which follows edits to the
list without resubscribing (:mod:`.live`)."""
