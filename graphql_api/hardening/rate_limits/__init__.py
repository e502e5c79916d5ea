"""Rate limits: token buckets per caller (in process or Redis), weighted by query cost.
The extension refuses with RATE_LIMITED and a Retry-After before execution starts."""
