// Availability: interviewers down the side, the day across; busy, tentative and out-of-office blocks,
// working hours shaded, the times everyone is free highlighted; pick one and book it.
"use strict";

(async () => {
  const { el, fill, add, api, header, showError, zonedInstant, isoWithOffset, timeIn, dateTimeIn, validZone, browserZone } = Console;
  const DEMO = [
    "alex.wilber@contoso.example",
    "megan.bowen@contoso.example",
    "patti.fernandez@contoso.example",
    "grady.archie@contoso.example",
    "adele.vance@contoso.example",
  ];
  const WEEKDAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
  const STATUS_LABEL = { busy: "Busy", tentative: "Tentative", oof: "Out of office", workingElsewhere: "Working elsewhere", unknown: "Unknown", free: "Free" };
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

  function nextWorkingDay() {
    const day = new Date();
    do day.setDate(day.getDate() + 1); while (day.getDay() === 0 || day.getDay() === 6);
    return day.toISOString().slice(0, 10);
  }

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

  async function search() {
    const status = $("status");
    let query;
    try { query = readQuery(); } catch (err) { showError(status, err); return; }
    if (!me) {
      showError(status, new Error("Sign in with Office 365 first (top right)."));
      return;
    }
    fill(status, el("p", { class: "muted", id: "searching" }, "Reading calendars…"));
    $("find").disabled = true;
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
      history.replaceState(null, "", `?${new URLSearchParams({ day: $("day").value, tz: query.zone, duration: String(query.duration), interviewers: query.emails.join(",") })}`);
      draw(query, data);
    } catch (err) {
      showError(status, err);
      $("result").hidden = true;
    } finally {
      $("find").disabled = false;
    }
  }

  // Position of an instant across the day, in percent (clipped).
  const at = (query, ms) => Math.min(100, Math.max(0, ((ms - query.from) / (query.to - query.from)) * 100));
  const span = (query, start, end) => ({ left: `${at(query, start)}%`, width: `${Math.max(0, at(query, end) - at(query, start))}%` });

  function hourMarks(query) {
    const marks = [];
    for (let t = query.from; t < query.to; t += 3600000) {
      const label = timeIn(query.zone, t);
      marks.push(el("div", { class: "hour", style: { left: `${at(query, t)}%` } }, label.endsWith(":00") ? label.slice(0, 2) : label));
    }
    return marks;
  }

  function gridLines(query) {
    const lines = [];
    for (let t = query.from + 3600000; t < query.to; t += 3600000) lines.push(el("div", { class: "gridline", style: { left: `${at(query, t)}%` } }));
    return lines;
  }

  // Working hours are the person's own (days, start, end in their zone): shade them on this day.
  function workingBands(query, hours) {
    if (!hours || !validZone(hours.time_zone)) return [];
    const [sh, sm] = hours.start.split(":").map(Number);
    const [eh, em] = hours.end.split(":").map(Number);
    const bands = [];
    const [y, m, d] = query.day;
    for (const offset of [-1, 0, 1]) {
      const date = new Date(Date.UTC(y, m - 1, d + offset));
      if (!hours.days.includes(WEEKDAYS[date.getUTCDay()])) continue;
      const args = [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate()];
      const start = zonedInstant(hours.time_zone, ...args, sh, sm);
      const end = zonedInstant(hours.time_zone, ...args, eh, em);
      if (end <= query.from || start >= query.to) continue;
      bands.push(el("div", { class: "working", style: span(query, start, end), title: `Working hours ${hours.start}–${hours.end} (${hours.time_zone})` }));
    }
    return bands;
  }

  function personRow(query, person) {
    const name = person.email.split("@")[0].split(".").map((w) => w[0].toUpperCase() + w.slice(1)).join(" ");
    const who = el("div", { class: "who" }, el("span", { class: "name", title: person.email }, name),
      el("span", { class: "zone" }, person.working_hours ? `${person.working_hours.start}–${person.working_hours.end} ${person.working_hours.time_zone}` : (person.time_zone || "")));
    if (person.status !== "ok") {
      return el("div", { class: "line unreadable", "data-email": person.email, "data-status": person.status },
        who, el("div", { class: "track" }, el("span", { class: "why" }, `Calendar not readable (${person.reason || "unknown"}): never counted as free`)));
    }
    const blocks = (person.busy || []).filter((b) => b.status !== "free").map((b) => {
      const start = Date.parse(b.start);
      const end = Date.parse(b.end);
      const label = STATUS_LABEL[b.status] || b.status;
      const text = b.subject ? `${b.subject}${b.location ? ` · ${b.location}` : ""}` : label;
      return el("div", { class: `block ${b.status}`, "data-status": b.status, style: span(query, start, end),
        title: `${label} ${timeIn(query.zone, start)}–${timeIn(query.zone, end)}${b.subject ? `: ${text}` : ""}` }, text);
    });
    return el("div", { class: "line person", "data-email": person.email, "data-status": "ok" },
      who, el("div", { class: "track" }, ...workingBands(query, person.working_hours), ...gridLines(query), ...blocks));
  }

  function freeBands(query, slots) {
    // Merge overlapping slots into the stretches where a booking can start and end.
    const sorted = slots.map((s) => [Date.parse(s.start), Date.parse(s.end)]).sort((a, b) => a[0] - b[0]);
    const merged = [];
    for (const [s, e] of sorted) {
      const last = merged[merged.length - 1];
      if (last && s <= last[1]) last[1] = Math.max(last[1], e); else merged.push([s, e]);
    }
    return merged.map(([s, e]) => el("div", { class: "free", style: span(query, s, e), title: `Everyone free ${timeIn(query.zone, s)}–${timeIn(query.zone, e)}` }));
  }

  function draw(query, data) {
    chosen = null;
    $("book-card").hidden = true;
    $("result").hidden = false;
    const dayLabel = new Intl.DateTimeFormat("en-GB", { timeZone: query.zone, weekday: "long", day: "numeric", month: "long", year: "numeric" }).format(new Date(query.from));
    $("result-title").textContent = `${dayLabel} · ${query.zone} · ${data.slots.length} bookable ${data.slots.length === 1 ? "time" : "times"}`;
    const grid = $("grid");
    fill(grid, 
      el("div", { class: "line hours" }, el("div", { class: "who" }, ""), el("div", { class: "track" }, ...hourMarks(query))),
      el("div", { class: "line bookable" }, el("div", { class: "who" }, "Everyone free"), el("div", { class: "track", id: "bookable-track" }, ...gridLines(query), ...freeBands(query, data.slots))),
      ...data.interviewers.map((person) => personRow(query, person)),
    );
    const overlay = el("div", { class: "chosen", id: "chosen-overlay", hidden: true });
    add(grid, overlay);
    drawExplanation(data.explanation);
    const slots = $("slots");
    fill(slots, ...data.slots.map((slot, index) => el("button", {
      type: "button", class: "slot", "data-start": slot.start, "data-end": slot.end, "data-index": String(index),
      onclick: (event) => choose(query, slot, event.currentTarget),
    }, `${timeIn(query.zone, Date.parse(slot.start))}–${timeIn(query.zone, Date.parse(slot.end))}`)));
    const calendar = $("calendar");
    fill(calendar, el("option", { value: "interviews" }, "The Interviews mailbox"),
      ...query.emails.map((email) => el("option", { value: email }, `${email}'s calendar`)));
  }

  function drawExplanation(explanation) {
    const box = $("explanation");
    if (!explanation) { fill(box); return; }
    fill(box, el("div", { class: "explanation", id: "why-nothing-fits" },
      el("strong", {}, "Nothing fits. "), explanation.summary || "",
      (explanation.reasons || []).length ? el("ul", { class: "reasons" }, explanation.reasons.map((r) => el("li", { "data-kind": r.kind }, r.person || r.pool ? el("strong", {}, `${r.person || r.pool}: `) : null, r.detail || r.kind))) : null,
      (explanation.suggestions || []).length ? el("div", {}, el("em", {}, "What would help:"),
        el("ul", { class: "suggestions" }, explanation.suggestions.map((s) => el("li", { "data-kind": s.kind }, `${s.detail || s.kind}${typeof s.slots === "number" ? ` (${s.slots} ${s.slots === 1 ? "time" : "times"})` : ""}`)))) : null,
    ));
  }

  function choose(query, slot, button) {
    for (const other of document.querySelectorAll("button.slot.selected")) other.classList.remove("selected");
    button.classList.add("selected");
    chosen = { ...slot, zone: query.zone, emails: query.emails };
    bookingKey = crypto.randomUUID(); // one key per chosen slot: a retried submit books once
    const start = Date.parse(slot.start);
    const end = Date.parse(slot.end);
    const overlay = $("chosen-overlay");
    const grid = $("grid");
    const label = grid.querySelector(".who").getBoundingClientRect().width;
    const width = grid.getBoundingClientRect().width - label;
    overlay.style.left = `${label + (width * at(query, start)) / 100}px`;
    overlay.style.width = `${(width * (at(query, end) - at(query, start))) / 100}px`;
    overlay.hidden = false;
    $("chosen-slot").textContent = `${dateTimeIn(query.zone, start)}–${timeIn(query.zone, end)} (${query.zone})`;
    $("book-card").hidden = false;
    fill($("booking-result"));
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
    const result = $("booking-result");
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
    fill(result, el("p", { class: "muted" }, "Booking…"));
    try {
      const { data } = await api("POST", "bookings", body, { "Idempotency-Key": bookingKey });
      fill(result, el("div", { class: "notice", id: "booked", "data-booking": data.id, "data-event": data.event_id || "" },
        el("strong", {}, "Booked. "), `${data.subject || body.subject}, ${dateTimeIn(chosen.zone, Date.parse(data.start))} `,
        el("span", { class: `badge ${data.status}` }, data.status),
        data.email ? el("p", { id: "email-status" }, `Email to the candidate: ${data.email.status}${data.email.error ? ` (${data.email.error})` : ""}`) : null,
        data.join_url ? el("p", {}, "Teams: ", el("a", { id: "join-url", href: data.join_url, target: "_blank", rel: "noopener" }, data.join_url)) : null,
        (data.warnings || []).length ? el("ul", {}, data.warnings.map((w) => el("li", {}, typeof w === "string" ? w : (w.message || w.code)))) : null,
        el("p", {}, el("a", { href: "/bookings", id: "to-bookings" }, "See it with the attendees' answers"))));
    } catch (err) {
      showError(result, err);
      if (err.code === "slot_unavailable") {
        add(result, el("p", {}, "Someone became busy: search again for fresh times."));
      } else {
        $("book").disabled = false; // the same key: a retry cannot book twice
      }
    }
  });

  if (me && lastQuery === null && params.get("day")) search();
})();
