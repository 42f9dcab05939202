// Status: who is signed in, the organisation's consent, readiness, and (for admins) the shared mailboxes.
"use strict";

(async () => {
  const { el, fill, add, api, config, header, signinUrl, showError } = Console;
  const cfg = await config();
  const me = await header("status");
  const meBox = document.getElementById("me");
  const consentBox = document.getElementById("consent");
  const consentForm = document.getElementById("consent-form");
  const tenantInput = document.getElementById("consent-tenant");
  tenantInput.value = cfg.tenant_hint || "";
  consentForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const tenant = tenantInput.value.trim();
    if (!tenant) return;
    document.cookie = `console_consent_tenant=${encodeURIComponent(tenant)}; path=/; max-age=3600; samesite=lax`;
    location.assign(`/api/consent/start?${new URLSearchParams({ tenant })}`);
  });

  // Consent this browser saw granted (the service's "You're all set", or a signed-in view): signed out,
  // the page still knows, and offers consent again only on request.
  const seen = cfg.consent_seen || localStorage.getItem("consent-granted");
  if (!me) {
    fill(meBox, 
      el("p", {}, "You are not signed in. Recruiters sign in with their Office 365 work account."),
      el("form", { class: "row", id: "signin-form", onsubmit: (event) => {
        event.preventDefault();
        location.assign(signinUrl(document.getElementById("login-hint").value.trim()));
      } },
        el("label", {}, "Work account", el("input", { id: "login-hint", type: "email", autocomplete: "username" }),
          el("span", { class: "hint" }, "Optional: your address, so Office 365 asks for that account")),
        el("button", { id: "signin-button", type: "submit" }, "Sign in with Office 365")),
    );
    if (seen) {
      fill(consentBox,
        el("p", {}, "Admin consent: ", el("span", { class: "badge consented", id: "consent-status", "data-status": "consented" }, "Granted"),
          ` for ${seen} (seen in this browser). Recruiters can sign in.`),
        el("p", {}, el("button", { type: "button", class: "link", id: "consent-again", onclick: () => { consentForm.hidden = false; } }, "Grant it again")));
      consentForm.hidden = true;
    } else {
      fill(consentBox, el("p", { class: "muted" }, "An administrator grants consent once for the whole organisation, before recruiters sign in."));
      consentForm.hidden = false;
    }
    return;
  }

  fill(meBox, 
    el("p", {}, "Signed in as ", el("strong", {}, me.user.display_name), ` (${me.user.username})`,
      me.user.is_tenant_admin ? ", an administrator of the organisation" : ""),
    el("p", { class: "muted" }, `Session until ${new Date(me.session_expires_at).toLocaleString()}. Office 365 grant: `,
      el("span", { class: `badge ${me.token_health.status}`, id: "token-health" }, me.token_health.status)),
    me.token_health.login_url ? el("p", {}, el("a", { class: "button", href: signinUrl(me.user.username) }, "Sign in again")) : null,
    (me.features || []).includes("automation")
      ? el("p", { id: "automation", "data-on": "true" }, "Email automation is on: the service may send interview emails from your mailbox.")
      : el("p", { id: "automation", "data-on": "false" }, el("a", { class: "button", href: signinUrl(me.user.username, "automation") }, "Switch on email automation"),
        el("span", { class: "muted" }, " (asks Office 365 for Mail.Send and Mail.Read: sending as you, and reading back only what the service sent and the replies)")),
  );

  const consent = me.tenant.consent;
  const consentLabel = { consented: "Granted", partial: "Partly granted", none: "Not granted", needs_attention: "Needs attention" };
  fill(consentBox, 
    el("p", {}, "Admin consent: ", el("span", { class: `badge ${consent.status}`, id: "consent-status", "data-status": consent.status }, consentLabel[consent.status] || consent.status)),
    consent.missing_permissions.length ? el("p", {}, `Missing: ${consent.missing_permissions.join(", ")}`) : null,
    consent.consent_request_url ? el("p", {}, el("a", { href: consent.consent_request_url, id: "consent-request" }, "The consent request to send to your administrator")) : null,
  );
  consentForm.hidden = consent.status === "consented";
  if (consent.status === "consented") localStorage.setItem("consent-granted", cfg.tenant_hint || "your organisation");
  else localStorage.removeItem("consent-granted");

  // What to do about a failed check, said with this page's own controls rather than the service's API.
  const MAILBOX_FIELD = { interviews_mailbox: "interviews-mailbox", sync_mailbox: "sync-mailbox" };
  function actionFor(check) {
    if (check.status === "pass") return null;
    const field = MAILBOX_FIELD[check.id];
    // The service's own words name its API ("... with PUT /api/tenants/me/settings"): here it is a form.
    if (field && check.status === "fail" && (check.action || "").includes("/api/")) {
      return el("div", { class: "action" }, me.user.is_tenant_admin
        ? el("a", { href: `#${field}`, class: "to-form", onclick: () => setTimeout(() => document.getElementById(field).focus(), 0) }, "Set it under Shared mailboxes below")
        : "An administrator of your organisation sets it on this page (Shared mailboxes).");
    }
    if (check.id === "interviews_write_access" && check.status === "fail" && me.user.is_tenant_admin) {
      return el("div", { class: "action" }, check.action || "",
        el("div", { class: "muted", id: "admin-not-in-group" }, "As the administrator who sets the service up you do not need this access yourself: only the recruiters who book interviews do."));
    }
    return check.action ? el("div", { class: "action" }, check.action) : null;
  }

  const readinessCard = document.getElementById("readiness-card");
  const summary = document.getElementById("readiness-summary");
  const checks = document.getElementById("checks");
  async function loadReadiness() {
    readinessCard.hidden = false;
    try {
      const { data } = await api("GET", "readiness");
      fill(summary, 
        el("span", { class: `badge ${data.ready ? "pass" : "fail"}`, id: "ready", "data-ready": String(data.ready) }, data.ready ? "Ready to schedule" : "Not ready yet"),
      );
      fill(checks, ...data.checks.map((check) => el("li", { "data-check": check.id, "data-status": check.status },
        el("span", {}, el("span", { class: `badge ${check.status}` }, check.status)),
        el("div", {},
          el("div", { class: "title" }, check.title),
          el("div", {}, check.detail),
          actionFor(check),
          (check.requirements || []).length ? el("ul", {}, check.requirements.map((r) => el("li", {}, r))) : null),
      )));
    } catch (err) {
      showError(summary, err);
      fill(checks);
    }
  }
  await loadReadiness();

  if (me.user.is_tenant_admin) {
    const card = document.getElementById("settings-card");
    const interviews = document.getElementById("interviews-mailbox");
    const sync = document.getElementById("sync-mailbox");
    const result = document.getElementById("settings-result");
    card.hidden = false;
    try {
      const { data } = await api("GET", "settings");
      interviews.value = data.interviews_mailbox || "";
      sync.value = data.sync_mailbox || "";
    } catch (err) {
      showError(result, err);
    }
    document.getElementById("settings-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!interviews.value.trim()) {
        fill(result, el("span", { class: "error", id: "settings-missing" },
          "Enter the Interviews mailbox first: interviews are booked there. The Sync mailbox is optional."));
        interviews.focus();
        return;
      }
      fill(result, el("span", { class: "muted" }, "Saving…"));
      try {
        await api("PUT", "settings", { interviews_mailbox: interviews.value.trim() || null, sync_mailbox: sync.value.trim() || null });
        fill(result, el("span", { class: "badge pass", id: "settings-saved" }, "Saved"));
        await loadReadiness();
      } catch (err) {
        showError(result, err);
      }
    });
  }
})();
