"""Alerts: a user's standing conditions on prices and indicators, and their firings.

- :mod:`.conditions` says what an alert can watch and checks a new one;
- :mod:`.service` creates, pauses, resumes and deletes alerts, and reads them;
- :mod:`.book` indexes one symbol's active alerts so a tick touches only those it meets;
- :mod:`.firings` stores a firing once and announces it;
- :mod:`.engine` evaluates every active alert on live ticks, once per cluster.

See ``docs/alerts.md``.
"""
