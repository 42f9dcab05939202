// Bookings: the organisation's interviews in a range with each attendee's answer and any drift,
// refreshed every few seconds so answers given in Outlook appear as their notifications arrive.
"use strict";

(async () => {
  const { el, fill, add, api, config, header, showError, dateTimeIn, timeIn, browserZone } = Console;
  const $ = (id) => document.getElementById(id);
  const RESPONSE_LABEL = {
    accepted: "Accepted", declined: "Declined", tentativelyAccepted: "Tentative", tentative: "Tentative",
    none: "No answer yet", notResponded: "No answer yet", organizer: "Organizer",
  };
  const cfg = await config();
  const me = await header("bookings");
  const zone = browserZone();
  const today = new Date();
  const iso = (date) => date.toISOString().slice(0, 10);
  $("from").value = iso(new Date(today.getTime() - 86400000));
  $("to").value = iso(new Date(today.getTime() + 28 * 86400000));
  let timer = null;

  // One page of the list: {"bookings": [...], "continuation": null on the last page}.
  const pageItems = (data) => data.bookings || [];
  const nextCursor = (data) => data.continuation || null;

  async function load() {
    if (!me) {
      showError($("status"), new Error("Sign in with Office 365 to see your organisation's bookings."));
      fill($("bookings"));
      return;
    }
    const from = new Date(`${$("from").value}T00:00:00`).toISOString();
    const to = new Date(`${$("to").value}T00:00:00`).toISOString();
    try {
      const all = [];
      let cursor = null;
      for (let page = 0; page < 20; page += 1) {
        const query = new URLSearchParams({ from, to });
        if (cursor) query.set("continuation", cursor);
        const { data } = await api("GET", `bookings?${query}`);
        all.push(...pageItems(data));
        cursor = nextCursor(data);
        if (!cursor) break;
      }
      draw(all);
      fill($("status"));
      $("updated").textContent = `Updated ${timeIn(zone, Date.now())}`;
    } catch (err) {
      showError($("status"), err);
    }
  }

  function attendeeItem(attendee) {
    const response = attendee.response || "none";
    return el("li", { class: "attendee", "data-email": attendee.email, "data-response": response },
      el("span", { class: `badge ${response === "none" || response === "notResponded" ? "waiting" : response}` }, RESPONSE_LABEL[response] || response), " ", attendee.name || attendee.email,
      attendee.type && attendee.type !== "required" ? el("span", { class: "muted" }, ` (${attendee.type})`) : null,
      attendee.responded_at ? el("span", { class: "muted" }, ` · ${dateTimeIn(zone, Date.parse(attendee.responded_at))}`) : null);
  }

  // Drift: what changed in Outlook rather than through the service (the history's "outlook" entries).
  function driftText(booking) {
    const changes = (booking.history || []).filter((h) => h.actor === "outlook");
    if (booking.status !== "drifted" && !changes.length) return null;
    return el("div", { class: "drift" }, booking.status === "drifted" ? el("div", {}, "Changed in Outlook:") : null,
      changes.map((h) => el("div", {}, `${dateTimeIn(zone, Date.parse(h.at))} ${h.action}${h.detail ? `: ${h.detail}` : ""}`)));
  }

  // The email trail of a booking (sent mail and the candidate's replies), kept open across refreshes.
  const trails = new Map();
  async function loadTrail(id) {
    try {
      const { data } = await api("GET", `bookings/${id}/emails`);
      trails.set(id, data.emails || []);
    } catch (err) {
      trails.set(id, [{ direction: "error", subject: String(err.message || err), from: "", at: null }]);
    }
    load();
  }

  function emailTrail(booking) {
    if (!booking.notify_candidate) return null;
    const items = trails.get(booking.id);
    const toggle = el("a", { href: "#", class: "email-trail-toggle" }, items ? "Hide emails" : "Emails");
    toggle.addEventListener("click", (event) => {
      event.preventDefault();
      if (trails.has(booking.id)) { trails.delete(booking.id); load(); } else { loadTrail(booking.id); }
    });
    return el("div", { class: "email-trail", "data-booking": booking.id }, toggle, items ? el("ul", {}, items.map((m) =>
      el("li", { "data-direction": m.direction }, el("span", { class: `badge ${m.direction}` }, m.direction), " ",
        m.at ? `${dateTimeIn(zone, Date.parse(m.at))} ` : "", el("strong", {}, m.subject || m.template || ""),
        m.from ? el("span", { class: "muted" }, ` from ${m.from}`) : null,
        m.preview ? el("div", { class: "muted" }, m.preview) : null,
        m.error ? el("div", { class: "muted" }, m.error) : null))) : null);
  }

  function draw(bookings) {
    const body = $("bookings");
    if (!bookings.length) {
      fill(body, el("tr", {}, el("td", { colspan: "5", class: "muted", id: "no-bookings" }, "No interviews booked in this range.")));
      return;
    }
    bookings.sort((a, b) => Date.parse(a.start) - Date.parse(b.start));
    fill(body, ...bookings.map((b) => el("tr", { class: "booking", "data-id": b.id, "data-status": b.status },
      el("td", {}, dateTimeIn(zone, Date.parse(b.start)), "–", timeIn(zone, Date.parse(b.end))),
      el("td", {}, el("strong", {}, b.subject || "Interview"), el("div", { class: "muted" }, b.organizer || b.mailbox || ""), driftText(b), emailTrail(b)),
      el("td", {}, el("span", { class: `badge ${b.status}` }, b.status)),
      el("td", {}, el("ul", { class: "attendees" }, (b.attendees || []).map((a) => attendeeItem(typeof a === "string" ? { email: a } : a)))),
      el("td", {}, b.join_url ? el("a", { href: b.join_url, target: "_blank", rel: "noopener" }, "Join") : el("span", { class: "muted" }, "—")),
    )));
  }

  $("range").addEventListener("submit", (event) => { event.preventDefault(); load(); });
  await load();
  if (me) timer = setInterval(load, Math.max(1, Number(cfg.poll_seconds) || 5) * 1000);
  window.addEventListener("beforeunload", () => clearInterval(timer));
})();
