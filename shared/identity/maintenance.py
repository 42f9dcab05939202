"""Housekeeping on a timer: remove what expired (used flow states and ended sessions).

Anonymous requests store nothing (pending flows travel in the browser's cookie), so what this
removes was written by a callback or a sign-in, and is bounded by them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.ports import Dependencies

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PurgeReport:
    flow_states: int
    sessions: int


def purge_expired(deps: Dependencies) -> PurgeReport:
    """Delete used flow states and sessions whose expiry has passed."""
    now = deps.clock.now()
    report = PurgeReport(
        flow_states=deps.flows.purge_expired_states(now),
        sessions=deps.sessions.purge_expired_sessions(now),
    )
    logger.info("Purged %s expired flow states and %s expired sessions", report.flow_states, report.sessions)
    return report
