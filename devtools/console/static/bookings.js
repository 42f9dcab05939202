// Bookings: the organisation's interviews in a range with each attendee's answer and any drift,
// refreshed every second or so, so answers given in Outlook appear as their notifications arrive.
"use strict";

(async () => {
  const { el, fill, api, config, header, showError, dateTimeIn, timeIn, browserZone, whenText, personLabel, zoneName } = Console;
  const $ = (id) => document.getElementById(id);
  const cfg = await config();
  const me = await header("bookings");
  const zone = browserZone();
  const today = new Date();
  const iso = (date) => `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`;
  $("from").value = iso(new Date(today.getTime() - 86400000));
  $("to").value = iso(new Date(today.getTime() + 30 * 86400000));
  $("zone-note").textContent = `Times in this browser's time zone, ${zone} (${zoneName(zone, Date.now())}).`;
  let timer = null;

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
        all.push(...(data.bookings || []));
        cursor = data.continuation || null;
        if (!cursor) break;
      }
      draw(all);
      fill($("status"));
      $("updated").textContent = `Updated ${timeIn(zone, Date.now())}`;
    } catch (err) {
      showError($("status"), err);
    }
  }

  function draw(bookings) {
    const body = $("bookings");
    if (!bookings.length) {
      fill(body, el("tr", {}, el("td", { colspan: "5", class: "muted", id: "no-bookings" }, "No interviews booked in this range.")));
      return;
    }
    bookings.sort((a, b) => Date.parse(a.start) - Date.parse(b.start));
    fill(body, ...bookings.map((b) => el("tr", { class: "booking", "data-id": b.id, "data-status": b.status },
      el("td", { title: zone }, whenText(zone, Date.parse(b.start), Date.parse(b.end))),
      el("td", {}, el("a", { class: "open-booking", href: `/bookings/${encodeURIComponent(b.id)}` }, el("strong", {}, b.subject || "Interview")),
        el("div", { class: "muted" }, b.organizer ? personLabel(b.organizer) : (b.mailbox || "")), Bookings.driftText(b, zone)),
      el("td", {}, el("span", { class: `badge ${b.status}` }, b.status)),
      el("td", {}, el("ul", { class: "attendees" }, (b.attendees || []).map((a) => Bookings.attendeeItem(typeof a === "string" ? { email: a } : a, zone)))),
      el("td", {}, Bookings.joinLink(b)),
    )));
  }

  $("range").addEventListener("submit", (event) => { event.preventDefault(); load(); });
  await load();
  if (me) timer = setInterval(load, Math.max(0.5, Number(cfg.poll_seconds) || 1) * 1000);
  window.addEventListener("beforeunload", () => clearInterval(timer));
})();
