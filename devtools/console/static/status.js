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
    if (tenant) location.assign(`/api/consent/start?${new URLSearchParams({ tenant })}`);
  });

  if (!me) {
    fill(meBox, 
      el("p", {}, "You are not signed in. Recruiters sign in with their Office 365 work account."),
      el("form", { class: "row", id: "signin-form", onsubmit: (event) => {
        event.preventDefault();
        location.assign(signinUrl(document.getElementById("login-hint").value.trim()));
      } },
        el("label", {}, "Work account (optional)", el("input", { id: "login-hint", type: "email", placeholder: "megan.bowen@contoso.example" })),
        el("button", { id: "signin-button", type: "submit" }, "Sign in with Office 365")),
    );
    fill(consentBox, el("p", { class: "muted" }, "An administrator grants consent once for the whole organisation, before recruiters sign in."));
    consentForm.hidden = false;
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
    consent.consent_request_url ? el("p", {}, el("a", { href: consent.consent_request_url }, "The consent request to send to your administrator")) : null,
  );
  consentForm.hidden = consent.status === "consented";

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
          check.action ? el("div", { class: "action" }, check.action) : null,
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
