// One booking: when and where, the event id, each attendee's answer (and on the local stack a control
// to answer as them), the history (answers, proposals, changes in Outlook), and moving or cancelling it.
"use strict";

(async () => {
  const { el, fill, api, config, header, showError, dateTimeIn, timeIn, browserZone, whenText, personLabel, zonedInstant, isoWithOffset, zoneName } = Console;
  const $ = (id) => document.getElementById(id);
  const id = decodeURIComponent(location.pathname.split("/").pop());
  const cfg = await config();
  const me = await header("bookings");
  const zone = browserZone();
  let booking = null;
  let etag = null;
  let moveTo = null;
  let timer = null;
  let generation = 0; // a change made here outdates reads that were already under way
  const ACTIONS = {
    created: "booked it", recovered: "finished booking it", moved: "moved it", updated: "changed it",
    cancelled: "cancelled it", drifted: "changed it", responded: "answered", meeting_restored: "restored the Teams meeting",
  };

  if (!me) {
    showError($("status"), new Error("Sign in with Office 365 to see this booking."));
    return;
  }

  async function load() {
    const started = generation;
    try {
      const answer = await api("GET", `bookings/${encodeURIComponent(id)}`);
      if (started !== generation) return;
      booking = answer.data;
      etag = answer.headers.get("etag") || booking.etag;
      draw();
      fill($("status"));
      $("updated").textContent = `· updated ${timeIn(zone, Date.now())}`;
    } catch (err) {
      showError($("status"), err);
    }
  }

  function answerControl(attendee) {
    if (!cfg.local_cloud || !booking.event_id || booking.status === "cancelled" || attendee.response === "organizer") return null;
    const choice = el("select", { class: "answer-choice", "aria-label": `Answer for ${attendee.email}` },
      el("option", { value: "accepted" }, "Accept"), el("option", { value: "tentativelyAccepted" }, "Tentative"), el("option", { value: "declined" }, "Decline"));
    const button = el("button", { type: "button", class: "secondary answer-as", "data-email": attendee.email, onclick: async () => {
      button.disabled = true;
      try {
        await api("POST", "local/respond", { event_id: booking.event_id, attendee: attendee.email, response: choice.value });
      } catch (err) {
        showError($("status"), err);
      } finally {
        button.disabled = false;
      }
    } }, "Answer as this attendee");
    return el("span", { class: "answer" }, " ", choice, " ", button);
  }

  function historyItem(entry) {
    const actor = entry.actor === "outlook" ? "In Outlook" : entry.actor === "service" ? "The service" : entry.actor && entry.actor.includes("@") ? personLabel(entry.actor) : "A recruiter";
    return el("li", { "data-action": entry.action },
      el("span", { class: "muted" }, `${dateTimeIn(zone, Date.parse(entry.at))} ${zoneName(zone, Date.parse(entry.at))}`), " ",
      actor, " ", ACTIONS[entry.action] || entry.action.replace(/_/g, " "), entry.detail ? `: ${entry.detail}` : "");
  }

  // The email trail (what was sent for this booking, the candidate's replies): read when the page opens,
  // after a move or a cancellation and on Refresh; it reads the recruiter's mailbox, so not on every poll.
  let trailShown = false;
  async function loadTrail() {
    if (!booking || !booking.notify_candidate) return;
    $("emails-card").hidden = false;
    try {
      const { data } = await api("GET", `bookings/${encodeURIComponent(id)}/emails`);
      const items = data.emails || [];
      fill($("email-trail"), items.length ? items.map((m) =>
        el("li", { "data-direction": m.direction },
          el("span", { class: `badge ${m.direction}` }, m.direction === "received" ? "reply" : m.direction), " ",
          m.at ? el("span", { class: "muted" }, `${dateTimeIn(zone, Date.parse(m.at))} ${zoneName(zone, Date.parse(m.at))} `) : null,
          el("strong", {}, m.subject || m.template || ""),
          m.from ? el("span", { class: "muted", title: m.from }, ` from ${m.from}`) : null,
          m.preview ? el("div", { class: "muted" }, m.preview) : null,
          m.error ? el("div", { class: "muted" }, m.error) : null)) : el("li", { class: "muted" }, "No email yet."));
    } catch (err) {
      showError($("email-trail"), err);
    }
  }
  $("emails-refresh").addEventListener("click", loadTrail);

  function draw() {
    const b = booking;
    $("booking-card").hidden = false;
    $("booking-card").dataset.status = b.status;
    $("subject").textContent = b.subject || "Interview";
    $("booking-status").textContent = b.status;
    $("booking-status").className = `badge ${b.status}`;
    $("when").textContent = whenText(zone, Date.parse(b.start), Date.parse(b.end));
    $("when").title = zone;
    fill($("organizer"), b.organizer ? personLabel(b.organizer) : b.calendar || "");
    fill($("join"), Bookings.joinLink(b));
    $("event-id").textContent = b.event_id || "not written yet";
    $("booking-id").textContent = b.id;
    fill($("warnings"), (b.warnings || []).length ? el("ul", {}, b.warnings.map((w) => el("li", {}, typeof w === "string" ? w : (w.message || w.code)))) : null);
    $("attendees-card").hidden = false;
    $("answer-note").hidden = !cfg.local_cloud || b.status === "cancelled";
    const open = document.activeElement && document.activeElement.classList.contains("answer-choice");
    if (!open) fill($("attendees"), (b.attendees || []).map((a) => Bookings.attendeeItem(a, zone, answerControl(a))));
    $("history-card").hidden = false;
    fill($("history"), (b.history || []).slice().sort((x, y) => Date.parse(x.at) - Date.parse(y.at)).map(historyItem));
    const changeable = b.status !== "cancelled" && b.status !== "failed" && b.status !== "pending";
    $("move-card").hidden = !changeable;
    $("cancel-card").hidden = !changeable;
    if (!$("move-day").value) {
      const start = new Date(Date.parse(b.start));
      $("move-day").value = `${start.getFullYear()}-${String(start.getMonth() + 1).padStart(2, "0")}-${String(start.getDate()).padStart(2, "0")}`;
    }
    $("move-zone").textContent = `Times in this browser's time zone, ${zone}.`;
    if (!trailShown && b.notify_candidate) {
      trailShown = true;
      loadTrail();
    }
  }

  // Moving: the interviewers' day as a grid (the interview's own time shows busy), then a new time.
  $("move-query").addEventListener("submit", async (event) => {
    event.preventDefault();
    const b = booking;
    const people = (b.attendees || []).filter((a) => a.type === "required" || a.type === "optional");
    const [y, m, d] = $("move-day").value.split("-").map(Number);
    const query = { zone, day: [y, m, d], from: zonedInstant(zone, y, m, d), to: zonedInstant(zone, y, m, d + 1), duration: Math.round((Date.parse(b.end) - Date.parse(b.start)) / 60000), emails: people.map((p) => p.email) };
    fill($("move-status"), el("p", { class: "muted" }, "Reading calendars…"));
    $("move-confirm").hidden = true;
    try {
      const { data } = await api("POST", "availability", {
        interviewers: people.map((p) => ({ email: p.email, required: p.type === "required" })),
        start: isoWithOffset(zone, query.from), end: isoWithOffset(zone, query.to),
        duration_minutes: query.duration, interval_minutes: 30, time_zone: zone,
      });
      fill($("move-status"));
      $("move-result").hidden = false;
      Grid.draw($("move-grid"), $("move-slots"), query, data, (slot, button) => {
        for (const other of document.querySelectorAll("#move-slots button.slot.selected")) other.classList.remove("selected");
        button.classList.add("selected");
        Grid.mark($("move-grid"), query, slot);
        moveTo = slot;
        $("move-to").textContent = whenText(zone, Date.parse(slot.start), Date.parse(slot.end));
        $("move-confirm").hidden = false;
      });
      Grid.explain($("move-explanation"), query, data, {});
    } catch (err) {
      showError($("move-status"), err);
    }
  });

  $("move-button").addEventListener("click", async () => {
    if (!moveTo) return;
    $("move-button").disabled = true;
    generation += 1;
    try {
      const answer = await api("PATCH", `bookings/${encodeURIComponent(id)}`, { start: moveTo.start, end: moveTo.end, check_availability: true }, { "If-Match": etag });
      generation += 1;
      booking = answer.data;
      etag = answer.headers.get("etag") || booking.etag;
      fill($("move-status"), el("div", { class: "notice", id: "moved" }, `Moved to ${whenText(zone, Date.parse(booking.start), Date.parse(booking.end))}. The attendees get the new time.`));
      $("move-result").hidden = true;
      draw();
      loadTrail();
    } catch (err) {
      showError($("move-status"), err);
    } finally {
      $("move-button").disabled = false;
    }
  });

  // Cancel with the version on screen. When the booking changed since (412), read it again: if only the
  // attendees' answers changed (an RSVP, or the answers a move reset), the interview the recruiter chose to
  // cancel is the same one, so cancel that version; if it was moved or cancelled meanwhile, show it and
  // let the recruiter decide.
  async function cancel(message) {
    const route = `bookings/${encodeURIComponent(id)}`;
    const body = { message: message || null };
    try {
      return await api("DELETE", route, body, etag ? { "If-Match": etag } : {});
    } catch (err) {
      if (err.status !== 412 || !booking) throw err;
      const before = booking;
      const fresh = await api("GET", route);
      generation += 1;
      booking = fresh.data;
      etag = fresh.headers.get("etag") || booking.etag;
      draw();
      const same = booking.status === before.status && booking.start === before.start && booking.end === before.end;
      if (!same) throw err;
      return await api("DELETE", route, body, { "If-Match": etag });
    }
  }

  $("cancel-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("cancel-button").disabled = true;
    generation += 1;
    const message = $("cancel-message").value.trim();
    try {
      await cancel(message);
      fill($("notice"), el("div", { class: "notice", id: "cancelled" }, "Cancelled. The attendees get the cancellation with your message."));
      await load();
      loadTrail();
    } catch (err) {
      showError($("status"), err);
    } finally {
      $("cancel-button").disabled = false;
    }
  });

  await load();
  timer = setInterval(load, Math.max(0.5, Number(cfg.poll_seconds) || 1) * 1000);
  window.addEventListener("beforeunload", () => clearInterval(timer));
})();
