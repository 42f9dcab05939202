"""NCRONTAB schedules: the parser lives in ``shared.sync.ncrontab`` (the renewal timer reads its own schedule)."""

from shared.sync.ncrontab import NCrontab, NCrontabError

__all__ = ["NCrontab", "NCrontabError"]
