"""NCRONTAB schedules: the parser lives in ``shared.ncrontab`` (the renewal timer reads its own schedule)."""

from shared.ncrontab import NCrontab, NCrontabError

__all__ = ["NCrontab", "NCrontabError"]
