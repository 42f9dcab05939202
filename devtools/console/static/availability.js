// Availability: interviewers down the side, the day across; busy, tentative and out-of-office blocks,
// working hours shaded, the times everyone is free highlighted; pick one and book it.
"use strict";

(async () => {
  const { el, fill, add, api, header, showError, zonedInstant, isoWithOffset, timeIn, validZone, browserZone, whenText, dayLabel } = Console;
  const DEMO = [
    "alex.wilber@contoso.example",
    "megan.bowen@contoso.example",
    "patti.fernandez@contoso.example",
    "grady.archie@contoso.example",
    "adele.vance@contoso.example",
  ];
  const $ = (id) => document.getElementById(id);

  const me = await header("availability");
  const params = new URLSearchParams(location.search);
  $("interviewers").value = params.get("interviewers") ? params.get("interviewers").split(",").join("\n") : DEMO.join("\n");
  $("tz").value = params.get("tz") || browserZone();
  $("day").value = params.get("day") || nextWorkingDay();
  $("duration").value = params.get("duration") || "60";
  let chosen = null;
  let bookingKey = null;
  let lastQuery = null;
  let mailboxZone = null; // the signed-in user's own mailbox zone, once an answer names it

  function nextWorkingDay() {
    const day = new Date();
    do day.setDate(day.getDate() + 1); while (day.getDay() === 0 || day.getDay() === 6);
    return `${day.getFullYear()}-${String(day.getMonth() + 1).padStart(2, "0")}-${String(day.getDate()).padStart(2, "0")}`;
  }

  // Whose zone the times are in: this browser's, the user's mailbox's, or one typed in.
  function describeZone() {
    const zone = $("tz").value.trim();
    const whose = zone === browserZone() ? "this browser's time zone" : zone === mailboxZone ? "your mailbox's time zone" : "a time zone you chose";
    const offer = mailboxZone && mailboxZone !== zone
      ? el("button", { type: "button", class: "link", id: "use-mailbox-zone", onclick: () => { $("tz").value = mailboxZone; describeZone(); search(); } },
        `Use your mailbox's, ${mailboxZone}`)
      : zone !== browserZone()
        ? el("button", { type: "button", class: "link", id: "use-browser-zone", onclick: () => { $("tz").value = browserZone(); describeZone(); search(); } },
          `Use this browser's, ${browserZone()}`)
        : null;
    fill($("tz-whose"), el("span", { id: "tz-owner", "data-owner": whose.split(" ")[0] }, whose), offer ? " · " : null, offer);
  }
  $("tz").addEventListener("input", describeZone);
  describeZone();

  function shiftDay(days) {
    const [y, m, d] = $("day").value.split("-").map(Number);
    $("day").value = new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
    search();
  }
  $("previous-day").addEventListener("click", () => shiftDay(-1));
  $("next-day").addEventListener("click", () => shiftDay(1));
  $("query").addEventListener("submit", (event) => { event.preventDefault(); search(); });

  function readQuery() {
    const zone = $("tz").value.trim();
    if (!validZone(zone)) throw new Error(`"${zone}" is not a time zone this browser knows (try America/New_York).`);
    const emails = $("interviewers").value.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean);
    if (!emails.length) throw new Error("Name at least one interviewer.");
    const [y, m, d] = $("day").value.split("-").map(Number);
    const from = zonedInstant(zone, y, m, d);
    const to = zonedInstant(zone, y, m, d + 1);
    return { zone, emails, from, to, day: [y, m, d], duration: Number($("duration").value) };
  }

  const pageUrl = (changes) => {
    const query = new URLSearchParams({ day: $("day").value, tz: $("tz").value.trim(), duration: $("duration").value, interviewers: readQuery().emails.join(","), ...changes });
    return `/availability?${query}`;
  };

  async function search({ keepBooking = false } = {}) {
    const status = $("status");
    let query;
    try { query = readQuery(); } catch (err) { showError(status, err); return; }
    if (!me) {
      showError(status, new Error("Sign in with Office 365 first (top right)."));
      return;
    }
    fill(status, el("p", { class: "muted", id: "searching" }, "Reading calendars…"));
    $("find").disabled = true;
    if (!keepBooking) $("booked-card").hidden = true;
    try {
      const { data } = await api("POST", "availability", {
        interviewers: query.emails.map((email) => ({ email, required: true })),
        start: isoWithOffset(query.zone, query.from),
        end: isoWithOffset(query.zone, query.to),
        duration_minutes: query.duration,
        interval_minutes: 30,
        time_zone: query.zone,
      });
      fill(status);
      lastQuery = query;
      history.replaceState(null, "", pageUrl({}));
      const mine = data.interviewers.find((p) => me && p.email.toLowerCase() === me.user.username.toLowerCase());
      const zone = mine && mine.working_hours && mine.working_hours.time_zone;
      if (zone && validZone(zone)) { mailboxZone = zone; describeZone(); }
      draw(query, data);
    } catch (err) {
      showError(status, err);
      $("result").hidden = true;
    } finally {
      $("find").disabled = false;
    }
  }

  function draw(query, data) {
    chosen = null;
    $("book-card").hidden = true;
    $("result").hidden = false;
    const count = data.slots.length;
    $("result-title").textContent = `${dayLabel(query.zone, query.from + 12 * 3600000)} · ${count} bookable ${count === 1 ? "time" : "times"}`;
    $("result-title").dataset.count = String(count);
    Grid.draw($("grid"), $("slots"), query, data, (slot, button) => choose(query, slot, button));
    Grid.explain($("explanation"), query, data, {
      tryDay: (day) => pageUrl({ day }),
      without: (email) => pageUrl({ interviewers: query.emails.filter((e) => e.toLowerCase() !== email.toLowerCase()).join(",") }),
    });
    const calendar = $("calendar");
    const previous = calendar.value;
    fill(calendar, el("option", { value: "interviews" }, "The Interviews mailbox"),
      ...query.emails.map((email) => el("option", { value: email }, `${email}'s calendar`)));
    if ([...calendar.options].some((o) => o.value === previous)) calendar.value = previous;
  }

  function choose(query, slot, button) {
    for (const other of document.querySelectorAll("button.slot.selected")) other.classList.remove("selected");
    button.classList.add("selected");
    chosen = { ...slot, zone: query.zone, emails: query.emails };
    bookingKey = crypto.randomUUID(); // one key per chosen slot: a retried submit books once
    Grid.mark($("grid"), query, slot);
    $("chosen-slot").textContent = whenText(query.zone, Date.parse(slot.start), Date.parse(slot.end));
    $("book-card").hidden = false;
    fill($("book-error"));
    $("book").disabled = false;
  }

  $("candidate-name").addEventListener("input", () => {
    const subject = $("subject");
    if (!subject.dataset.touched) subject.value = `Interview: ${$("candidate-name").value}`;
  });
  $("subject").addEventListener("input", () => { $("subject").dataset.touched = "1"; });

  $("book-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!chosen) return;
    const errors = $("book-error");
    const name = $("candidate-name").value.trim();
    const body = {
      start: chosen.start,
      end: chosen.end,
      interviewers: chosen.emails,
      optional_interviewers: [],
      candidate: { name, email: $("candidate-email").value.trim() },
      subject: $("subject").value.trim() || `Interview: ${name}`,
      body: "",
      online_meeting: $("online").checked,
      location: null,
      calendar: $("calendar").value,
      check_availability: true,
      notify_candidate: $("notify-candidate").checked,
    };
    $("book").disabled = true;
    fill(errors, el("p", { class: "muted" }, "Booking…"));
    try {
      const { data } = await api("POST", "bookings", body, { "Idempotency-Key": bookingKey });
      fill(errors);
      const zone = chosen.zone;
      fill($("booking-result"), el("div", { class: "notice", id: "booked", "data-booking": data.id, "data-event": data.event_id || "" },
        el("strong", {}, "Booked. "), `${data.subject || body.subject}, ${whenText(zone, Date.parse(data.start), Date.parse(data.end))} `,
        el("span", { class: `badge ${data.status}` }, data.status),
        data.email ? el("p", { id: "email-status" }, `Email to the candidate: ${data.email.status}${data.email.error ? ` (${data.email.error})` : ""}`) : null,
        data.join_url ? el("p", {}, "Teams: ", el("a", { id: "join-url", href: data.join_url, target: "_blank", rel: "noopener" }, data.join_url)) : null,
        (data.warnings || []).length ? el("ul", {}, data.warnings.map((w) => el("li", {}, typeof w === "string" ? w : (w.message || w.code)))) : null,
        el("p", {}, el("a", { href: `/bookings/${encodeURIComponent(data.id)}`, id: "to-booking" }, "Open the booking"), " · ",
          el("a", { href: "/bookings", id: "to-bookings" }, "All bookings, with the attendees' answers"))));
      $("booked-card").hidden = false;
      // The booked time is busy now: draw the day again from the calendars.
      await search({ keepBooking: true });
      $("booked-card").scrollIntoView({ block: "nearest" });
    } catch (err) {
      showError(errors, err);
      if (err.code === "slot_unavailable") {
        add(errors, el("p", {}, "Someone became busy: search again for fresh times."));
      } else {
        $("book").disabled = false; // the same key: a retry cannot book twice
      }
    }
  });

  if (me && lastQuery === null && params.get("day")) search();
})();
