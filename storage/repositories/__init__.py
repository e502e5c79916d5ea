"""Query functions per entity: plain async functions over an ``AsyncSession``.

They never commit; the caller (a service or a loader) owns the transaction.
"""
