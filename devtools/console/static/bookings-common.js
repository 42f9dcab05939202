// What the list of bookings and a booking's own page show alike: attendees, drift, the Join link.
"use strict";

const Bookings = (() => {
  const { el, dateTimeIn, personLabel } = Console;
  const RESPONSE_LABEL = {
    accepted: "Accepted", declined: "Declined", tentativelyAccepted: "Tentative", tentative: "Tentative",
    none: "No answer yet", notResponded: "No answer yet", organizer: "Organizer",
  };

  function attendeeItem(attendee, zone, extra = null) {
    const response = attendee.response || "none";
    return el("li", { class: "attendee", "data-email": attendee.email, "data-response": response },
      el("span", { class: `badge ${response === "none" || response === "notResponded" ? "waiting" : response}` }, RESPONSE_LABEL[response] || response), " ",
      personLabel(attendee.email, attendee.name),
      attendee.type && attendee.type !== "required" ? el("span", { class: "muted" }, ` (${attendee.type})`) : null,
      attendee.responded_at ? el("span", { class: "muted" }, ` · ${dateTimeIn(zone, Date.parse(attendee.responded_at))}`) : null,
      attendee.proposed_start ? el("span", { class: "proposal" }, ` · proposes ${dateTimeIn(zone, Date.parse(attendee.proposed_start))}`) : null,
      extra);
  }

  // Drift: what changed in Outlook rather than through the service (the history's "outlook" entries).
  function driftText(booking, zone) {
    const changes = (booking.history || []).filter((h) => h.actor === "outlook");
    if (booking.status !== "drifted" && !changes.length) return null;
    return el("div", { class: "drift" }, booking.status === "drifted" ? el("div", {}, "Changed in Outlook:") : null,
      changes.map((h) => el("div", {}, `${dateTimeIn(zone, Date.parse(h.at))} ${h.action}${h.detail ? `: ${h.detail}` : ""}`)));
  }

  // A cancelled (or failed) interview has no meeting to join.
  const joinLink = (b) => (b.join_url && b.status !== "cancelled" && b.status !== "failed"
    ? el("a", { class: "join", href: b.join_url, target: "_blank", rel: "noopener" }, "Join")
    : el("span", { class: "muted" }, "—"));

  return { attendeeItem, driftText, joinLink, RESPONSE_LABEL };
})();
