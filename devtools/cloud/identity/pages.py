"""The pages a browser sees: sign-in with the demo accounts, the account picker, the consent prompt."""

from __future__ import annotations

import html

from starlette.responses import HTMLResponse

from devtools.cloud.identity.common import (
    is_hinted,
    page,
)
from devtools.cloud.identity.sessions import Sessions
from devtools.cloud.signin import (
    DEMO_PASSWORD,
)
from devtools.cloud.state import AppRegistration, Tenant, User


class Pages(Sessions):
    """Renders the sign-in, account picker and consent pages."""

    def _sign_in_page(
        self,
        segment: str,
        tenant: Tenant | None,
        ctx: str,
        login_hint: str | None,
        error: str | None = None,
        *,
        account: User | None = None,
    ) -> HTMLResponse:
        with self.world.lock:
            tenants = [tenant] if tenant else sorted(self.world.tenants.values(), key=lambda t: t.display_name)
            options = []
            for t in tenants:
                # The hinted account first (and chosen), the others after it.
                for u in sorted(
                    self.world.tenant_users(t.tenant_id),
                    key=lambda u: (not is_hinted(u, login_hint), u.user_principal_name),
                ):
                    if u.kind != "user":
                        continue
                    checked = " checked" if is_hinted(u, login_hint) else ""
                    admin = " (admin)" if u.is_admin else ""
                    options.append(
                        f"<label><input type='radio' name='login' value='{html.escape(u.user_principal_name)}'"
                        f"{checked}/> {html.escape(u.display_name)} &lt;{html.escape(u.user_principal_name)}&gt;"
                        f" {html.escape(t.display_name)}{admin}</label>"
                    )
        notice = f"<p id='error' style='color:#a00'>{html.escape(error)}</p>" if error else ""
        hinted = self._user_for_hint(login_hint, tenant) if login_hint else None
        ask = (
            f"<p id='enter-password'>Enter the password for <strong>{html.escape(hinted.user_principal_name)}</strong>"
            " (chosen below), or pick another account.</p>"
            if hinted is not None
            else ""
        ) + "<p>Pick an account</p>"
        body = (
            f"{notice}{ask}"
            f"<form method='POST' action='/{html.escape(segment)}/login'>"
            f"<input type='hidden' name='ctx' value='{html.escape(ctx)}'/>{''.join(options)}"
            "<label>Password <input type='password' name='passwd'/></label>"
            "<button type='submit'>Sign in</button></form>"
            f"<p id='demo-password'>Demo password for every account: <code>{html.escape(DEMO_PASSWORD)}</code></p>"
        )
        return page("Sign in", body, status=200 if not error else 400, account=account)

    def _picker_page(self, segment: str, ctx: str, accounts: list[User]) -> HTMLResponse:
        """``prompt=select_account``: the accounts signed in with this browser, and "Use another account"."""
        action = f"/{html.escape(segment)}/pick"
        hidden = f"<input type='hidden' name='ctx' value='{html.escape(ctx)}'/>"
        choices = "".join(
            f"<form method='POST' action='{action}'>{hidden}"
            f"<input type='hidden' name='account' value='{html.escape(u.user_principal_name)}'/>"
            f"<button type='submit'>{html.escape(u.display_name)} &lt;{html.escape(u.user_principal_name)}&gt;"
            "</button></form>"
            for u in accounts
        )
        another = (
            f"<form method='POST' action='{action}'>{hidden}<input type='hidden' name='account' value=''/>"
            "<button type='submit' id='use-another-account'>Use another account</button></form>"
        )
        return page("Pick an account", choices + another, account=accounts[0])

    def _consent_page(
        self,
        segment: str,
        ctx: str,
        app: AppRegistration,
        scopes: list[str],
        *,
        admin: bool,
        roles: list[str] | None = None,
        account: User | None = None,
    ) -> HTMLResponse:
        items = "".join(f"<li>{html.escape(s)}</li>" for s in scopes)
        role_items = "".join(f"<li>{html.escape(r)} (application)</li>" for r in roles or [])
        org = "<p>Consent on behalf of your organization.</p>" if admin else ""
        body = (
            f"<p><strong>{html.escape(app.display_name)}</strong> needs permission to:</p>"
            f"<ul>{items}{role_items}</ul>{org}"
            f"<form method='POST' action='/{html.escape(segment)}/consent'>"
            f"<input type='hidden' name='ctx' value='{html.escape(ctx)}'/>"
            "<button type='submit' name='answer' value='accept'>Accept</button>"
            "<button type='submit' name='answer' value='cancel'>Cancel</button></form>"
        )
        return page("Permissions requested", body, account=account)
