// The availability grid (people down the side, the day across) and the explanation when nothing fits,
// shared by the Availability page and a booking's "Move" card.
"use strict";

const Grid = (() => {
  const { el, fill, add, zonedInstant, timeIn, validZone, zoneName, dayLabel, personLabel, dayRanges } = Console;
  const WEEKDAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
  const STATUS_LABEL = { busy: "Busy", tentative: "Tentative", oof: "Out of office", workingElsewhere: "Working elsewhere", unknown: "Unknown", free: "Free" };
  const UNREADABLE = {
    unknown: "no such mailbox", on_premises: "the mailbox is on premises", access_policy: "an access policy keeps the app out",
    throttled: "Microsoft asked us to slow down", timeout: "Microsoft did not answer in time", unavailable: "Microsoft was unavailable",
  };

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
      bands.push(el("div", { class: "working", style: span(query, start, end), title: `Working hours ${dayRanges(hours.days)} ${hours.start}–${hours.end} (${hours.time_zone})` }));
    }
    return bands;
  }

  const hoursText = (hours) => `${dayRanges(hours.days)} ${hours.start}–${hours.end} ${hours.time_zone}`;

  function personRow(query, person) {
    const who = el("div", { class: "who" }, el("span", { class: "name" }, personLabel(person.email)),
      el("span", { class: "zone" }, person.working_hours ? hoursText(person.working_hours) : (person.time_zone || "")));
    if (person.status !== "ok") {
      return el("div", { class: "line unreadable", "data-email": person.email, "data-status": person.status },
        who, el("div", { class: "track" }, el("span", { class: "why" }, `Calendar not readable (${UNREADABLE[person.reason] || person.reason || "unknown"}): never counted as free`)));
    }
    const blocks = (person.busy || []).filter((b) => b.status !== "free").map((b) => {
      const start = Date.parse(b.start);
      const end = Date.parse(b.end);
      const label = STATUS_LABEL[b.status] || b.status;
      const what = b.subject ? `${b.subject}${b.location ? ` · ${b.location}` : ""}` : label;
      const width = at(query, end) - at(query, start);
      // The whole label on hover; in the block only what fits (a short block shows its times' start).
      const title = `${label} ${timeIn(query.zone, start)}–${timeIn(query.zone, end)}${b.subject ? `: ${what}` : ""}`;
      return el("div", { class: `block ${b.status}${width < 3 ? " narrow" : ""}`, "data-status": b.status, style: span(query, start, end), title, "aria-label": title },
        el("span", { class: "label" }, what));
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

  // The grid and the slot buttons; onChoose(slot, button) when a time is picked.
  function draw(grid, slotsBox, query, data, onChoose) {
    fill(grid,
      el("div", { class: "line hours" }, el("div", { class: "who" }, `Times in ${query.zone} (${zoneName(query.zone, query.from)})`), el("div", { class: "track" }, ...hourMarks(query))),
      el("div", { class: "line bookable" }, el("div", { class: "who" }, "Everyone free"), el("div", { class: "track bookable-track", id: grid.id === "grid" ? "bookable-track" : null }, ...gridLines(query), ...freeBands(query, data.slots))),
      ...data.interviewers.map((person) => personRow(query, person)),
    );
    add(grid, el("div", { class: "chosen", id: grid.id === "grid" ? "chosen-overlay" : null, hidden: true }));
    fill(slotsBox, ...data.slots.map((slot, index) => el("button", {
      type: "button", class: "slot", "data-start": slot.start, "data-end": slot.end, "data-index": String(index),
      onclick: (event) => onChoose(slot, event.currentTarget),
    }, `${timeIn(query.zone, Date.parse(slot.start))}–${timeIn(query.zone, Date.parse(slot.end))}`)));
  }

  // Marks the chosen time across the grid.
  function mark(grid, query, slot) {
    const overlay = grid.querySelector(".chosen");
    const label = grid.querySelector(".who").getBoundingClientRect().width;
    const width = grid.getBoundingClientRect().width - label;
    const start = Date.parse(slot.start);
    const end = Date.parse(slot.end);
    overlay.style.left = `${label + (width * at(query, start)) / 100}px`;
    overlay.style.width = `${(width * (at(query, end) - at(query, start))) / 100}px`;
    overlay.hidden = false;
  }

  // The next Monday-to-Friday day after ``day`` ([y, m, d]), as [y, m, d].
  function nextWeekday(day, after = 1) {
    const date = new Date(Date.UTC(day[0], day[1] - 1, day[2] + after));
    while (date.getUTCDay() === 0 || date.getUTCDay() === 6) date.setUTCDate(date.getUTCDate() + 1);
    return [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate()];
  }
  const isoDay = ([y, m, d]) => `${y}-${String(m).padStart(2, "0")}-${String(d).padStart(2, "0")}`;
  const times = (n) => `${n} ${n === 1 ? "time fits" : "times fit"}`;

  // Why nothing fits, in sentences: one line per person, then what can be done from this view.
  // ``tryDay(isoDay)`` gives the link that shows another day; ``without(email)`` the search without someone.
  function explain(box, query, data, { tryDay, without } = {}) {
    const explanation = data.explanation;
    if (!explanation) { fill(box); return; }
    const minutes = query.duration;
    const people = new Map(data.interviewers.map((p) => [p.email.toLowerCase(), p]));
    const byPerson = new Map();
    const general = [];
    for (const reason of explanation.reasons || []) {
      if (reason.person) {
        const key = reason.person.toLowerCase();
        if (!byPerson.has(key)) byPerson.set(key, []);
        byPerson.get(key).push(reason);
      } else {
        general.push(reason);
      }
    }
    const weekday = WEEKDAYS[new Date(Date.UTC(query.day[0], query.day[1] - 1, query.day[2])).getUTCDay()];
    const dayName = weekday[0].toUpperCase() + weekday.slice(1);
    const periods = (r) => (r.periods || []).map((p) => `${timeIn(query.zone, Date.parse(p.start))}–${timeIn(query.zone, Date.parse(p.end))}`).join(", ");
    function clause(reason, person) {
      switch (reason.kind) {
        case "outside_working_hours": {
          const hours = person && person.working_hours;
          if (!hours) return "is outside working hours then";
          const works = `works ${dayRanges(hours.days)}, ${hours.start}–${hours.end} ${hours.time_zone}`;
          return hours.days.includes(weekday) ? `${works}, which leaves no ${minutes} minutes with the others` : `${works}, so not on ${dayName}`;
        }
        case "busy": return periods(reason) ? `is busy ${periods(reason)}` : "is busy right around this day (the buffers reach it)";
        case "unreadable": return `has a calendar we could not read (${UNREADABLE[person && person.reason] || "unknown reason"}), so is never counted as free`;
        case "day_cap_reached": return "already has the most interviews allowed that day";
        case "week_cap_reached": return "already has the most interviews allowed that week";
        default: return reason.detail || reason.kind.replace(/_/g, " ");
      }
    }
    const GENERAL = {
      no_common_time: `Everyone is free at some point, but never all at the same time for ${minutes} minutes.`,
      window_too_short: `The day is shorter than ${minutes} minutes.`,
      notice: "The free times are too soon: the minimum notice leaves them out.",
    };
    const lines = [...byPerson.entries()].map(([email, reasons]) => {
      const person = people.get(email);
      return el("li", { "data-person": email, "data-kind": reasons.map((r) => r.kind).join(" ") },
        personLabel(person ? person.email : email), " ", reasons.map((r) => clause(r, person)).join("; and "), ".");
    });
    for (const reason of general) lines.push(el("li", { "data-kind": reason.kind }, GENERAL[reason.kind] || `${reason.detail || reason.kind}.`));

    // Only what this view can do: another day (a link), or the search without someone.
    const help = [];
    const widen = (explanation.suggestions || []).find((s) => s.kind === "widen_window" && s.amount);
    const next = widen ? nextWeekday(query.day, 0 + widen.amount) : nextWeekday(query.day);
    const nextLabel = dayLabel("UTC", Date.UTC(next[0], next[1] - 1, next[2], 12));
    if (tryDay) {
      help.push(el("li", { "data-kind": "try_day" }, el("a", { href: tryDay(isoDay(next)), class: "try-day", "data-day": isoDay(next) }, `Try ${nextLabel}`),
        widen && widen.slots ? ` (${times(widen.slots)} there).` : "."));
    }
    for (const s of explanation.suggestions || []) {
      if (s.kind === "make_optional" && s.subject && without) {
        help.push(el("li", { "data-kind": s.kind }, el("a", { href: without(s.subject), class: "without" }, "Search without ", personLabel(s.subject)),
          ` (${times(s.slots)} of ${minutes} minutes then).`));
      }
    }
    fill(box, el("div", { class: "explanation", id: "why-nothing-fits" },
      el("p", {}, el("strong", {}, "Nothing fits. "), `No ${minutes}-minute time on ${dayLabel(query.zone, query.from + 12 * 3600000)} suits everyone:`),
      lines.length ? el("ul", { class: "reasons" }, lines) : null,
      help.length ? el("div", {}, el("em", {}, "What you can do:"), el("ul", { class: "suggestions" }, help)) : null,
    ));
  }

  return { draw, mark, explain, nextWeekday, isoDay, STATUS_LABEL };
})();
