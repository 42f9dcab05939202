"""Pending browser flows (sign-in and admin consent) sealed into the browser's own cookie.

Starting a flow stores nothing: the flow (MSAL's dict with the PKCE verifier and nonce, and our
own context) is encrypted and authenticated with the TokenCipher (AES-256-GCM) and handed to the
browser as its binding cookie. The associated data names the flow kind and the hash of its
``state``, and the sealed payload carries its expiry, so a cookie opens only for its own kind and
state, only until it expires, and only in the browser it was set in. Single use is kept by
recording the hash of each state when its callback is accepted (``FlowStore.consume_state``);
those small rows carry the flow's expiry and a timer purges them (``shared.identity.maintenance``).
A callback that lacks the cookie, or brings another browser's, consumes nothing.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.errors import (
    AdminApprovalRequired,
    ConsentDeclined,
    InteractionRequired,
    InvalidFlowState,
    SigninDenied,
    TokenIntegrityError,
)
from shared.identity.guard import hash_secret
from shared.models import FlowKind, PendingFlow
from shared.ports import Dependencies

logger = logging.getLogger(__name__)

# Browsers keep cookies of up to 4096 bytes (name, value and attributes; RFC 6265 section 6.1).
MAX_SEALED_CHARS = 3800


@dataclass(frozen=True)
class BrowserFlowStart:
    """Where to send the browser, and the sealed flow to set as its binding cookie."""

    redirect_url: str
    binding: str


def _record_id(kind: FlowKind, state: str) -> str:
    return f"flowcookie/{kind.value}/{hash_secret(state)}"


def seal_flow(deps: Dependencies, kind: FlowKind, state: str, data: dict[str, Any]) -> str:
    """The cookie value carrying this pending flow. Nothing is stored."""
    expires_at = deps.clock.now() + timedelta(seconds=deps.settings.flow_ttl_seconds)
    payload = {"kind": kind.value, "state": state, "exp": int(expires_at.timestamp()), "data": data}
    plaintext = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    sealed = deps.cipher.encrypt(plaintext, tenant_id="", record_id=_record_id(kind, state))
    if len(sealed) > MAX_SEALED_CHARS:
        raise ValueError(f"A sealed {kind.value} flow is {len(sealed)} characters; a cookie holds {MAX_SEALED_CHARS}.")
    return sealed


def take_flow(deps: Dependencies, kind: FlowKind, state: str | None, sealed: str | None) -> PendingFlow:
    """Open the flow this browser's cookie carries for ``state`` and mark the state used.

    The cookie is checked before anything is consumed, so a request that knows a state but not
    the browser's cookie leaves the real flow intact. Raises InvalidFlowState.
    """
    if not state:
        raise InvalidFlowState("The response carries no state. Start again.")
    if not sealed:
        raise InvalidFlowState("This response was not started from this browser. Start again.")
    try:
        plaintext = deps.cipher.decrypt(sealed, tenant_id="", record_id=_record_id(kind, state))
        payload = json.loads(plaintext)
    except (TokenIntegrityError, ValueError) as err:
        logger.info("A %s callback brought a flow cookie that does not open for its state", kind.value)
        raise InvalidFlowState("This response was not started from this browser. Start again.") from err
    if (
        not isinstance(payload, dict)
        or payload.get("kind") != kind.value
        or not hmac.compare_digest(str(payload.get("state", "")), state)
        or not isinstance(payload.get("exp"), int)
        or not isinstance(payload.get("data"), dict)
    ):
        raise InvalidFlowState("This response was not started from this browser. Start again.")
    expires_at = datetime.fromtimestamp(payload["exp"], tz=UTC)
    if expires_at <= deps.clock.now():
        raise InvalidFlowState("This link has expired. Start again.")
    deps.flows.consume_state(kind, hash_secret(state), expires_at)
    return PendingFlow(
        kind=kind,
        state=state,
        data=payload["data"],
        created_at=expires_at - timedelta(seconds=deps.settings.flow_ttl_seconds),
        expires_at=expires_at,
    )


# ---- error answers of Microsoft's redirects -------------------------------------------------------
# The AADSTS number at the start of an ``error_description`` ("AADSTS90094: Admin consent is ...").
_AADSTS = re.compile(r"AADSTS(\d{4,8})")
ADMIN_APPROVAL_CODES = frozenset({90094})
DECLINED_CODES = frozenset({65004})
# prompt=none could not finish: no session (50058), another account's session (16000), consent missing (65001).
INTERACTION_CODES = frozenset({50058, 16000, 65001})
INTERACTION_ERRORS = frozenset({"login_required", "interaction_required", "consent_required"})


def aadsts_code(description: str | None) -> int | None:
    """The AADSTS number an ``error_description`` starts with, or None (the text is never shown or logged)."""
    head = (description or "")[:16].split(":", 1)[0].strip()
    match = _AADSTS.fullmatch(head)
    return int(match.group(1)) if match else None


def redirect_error(params: Mapping[str, str], message: str, **details: Any) -> SigninDenied:
    """The error a browser leg raises for Microsoft's error redirect, by its AADSTS number first
    (a v2 admin consent that was declined arrives as ``consent_required`` with AADSTS65004), then by
    its OAuth ``error``. Only the number and the ``error`` value (at most 64 characters) are kept."""
    error = str(params.get("error", ""))[:64]
    code = aadsts_code(params.get("error_description"))
    reason = f"AADSTS{code}" if code is not None else error
    if code in ADMIN_APPROVAL_CODES:
        return AdminApprovalRequired(
            "An administrator of your organisation must approve the app's permissions.", reason=reason, **details
        )
    if code in DECLINED_CODES or (code is None and error in {"access_denied", "permission_denied"}):
        return ConsentDeclined(
            "The permissions were cancelled or declined, so nothing was granted.", reason=reason, **details
        )
    if code in INTERACTION_CODES or (code is None and error in INTERACTION_ERRORS):
        return InteractionRequired("Microsoft needs you to sign in interactively.", reason=reason, **details)
    return SigninDenied(message, reason=reason, **details)
