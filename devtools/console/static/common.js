// Shared by every page: calls to the console's own backend, the header, small helpers.
"use strict";

const Console = (() => {
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "style") Object.assign(node.style, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  };

  // replaceChildren/append, leaving out the null and false that conditional children give.
  const fill = (target, ...children) => target.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  const add = (target, ...children) => target.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));

  class ApiError extends Error {
    constructor(status, code, message, details) {
      super(message);
      this.status = status;
      this.code = code;
      this.details = details || {};
    }
  }

  // The console's backend adds the function key and forwards the session; the page never sees either.
  async function api(method, route, body, headers = {}) {
    const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin" };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(`/app/${route}`, init);
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (!response.ok) {
      const err = (data && data.error) || {};
      throw new ApiError(response.status, err.code || `http_${response.status}`, err.message || text || response.statusText, err);
    }
    return { data, headers: response.headers, status: response.status };
  }

  let configPromise = null;
  const config = () => (configPromise ||= fetch("/app/config").then((r) => r.json()));

  const signinUrl = (hint, features) => {
    const params = new URLSearchParams({ return_to: `${location.origin}${location.pathname}`, prompt: "select_account" });
    if (hint) params.set("login_hint", hint);
    if (features) params.set("features", features);
    return `/api/auth/login?${params}`;
  };

  async function signOut() {
    await fetch("/api/auth/logout", { method: "POST", credentials: "same-origin" });
    location.reload();
  }

  // Fills the header's account corner; resolves to /api/me's answer, or null when signed out.
  async function header(active) {
    const nav = document.querySelector("header.top nav");
    for (const link of nav.querySelectorAll("a")) link.classList.toggle("here", link.dataset.page === active);
    const corner = document.querySelector("header.top .account");
    fill(corner);
    try {
      const { data } = await api("GET", "me");
      add(corner, 
        el("span", { id: "account", "data-username": data.user.username }, `${data.user.display_name} (${data.user.username})`),
        data.user.is_tenant_admin ? el("span", { class: "badge" }, "admin") : null,
        el("button", { id: "signout", type: "button", onclick: signOut }, "Sign out"),
      );
      return data;
    } catch (err) {
      if (err.status !== 401) {
        add(corner, el("span", { class: "error" }, err.message));
        return null;
      }
      add(corner, el("a", { id: "signin-link", class: "button", href: signinUrl() }, "Sign in with Office 365"));
      return null;
    }
  }

  function showError(target, err) {
    fill(target, el("div", { class: "error", role: "alert" }, `${err.message}${err.code ? ` (${err.code})` : ""}`));
  }

  // Time zones, without libraries: the offset of ``zone`` at instant ``ms``, in minutes east of UTC.
  function offsetMinutes(zone, ms) {
    const parts = new Intl.DateTimeFormat("en-US", { timeZone: zone, timeZoneName: "longOffset" }).formatToParts(new Date(ms));
    const name = (parts.find((p) => p.type === "timeZoneName") || {}).value || "GMT";
    const match = /GMT([+-])(\d{2}):(\d{2})/.exec(name);
    if (!match) return 0;
    const minutes = Number(match[2]) * 60 + Number(match[3]);
    return match[1] === "-" ? -minutes : minutes;
  }

  // The instant of wall-clock time (y, m, d, h, mi) in ``zone`` (m is 1-12).
  function zonedInstant(zone, y, m, d, h = 0, mi = 0) {
    const guess = Date.UTC(y, m - 1, d, h, mi);
    let ms = guess - offsetMinutes(zone, guess) * 60000;
    const again = guess - offsetMinutes(zone, ms) * 60000;
    if (again !== ms) ms = again;
    return ms;
  }

  // ISO 8601 with the zone's offset at that instant, as the service's contract asks.
  function isoWithOffset(zone, ms) {
    const off = offsetMinutes(zone, ms);
    const local = new Date(ms + off * 60000).toISOString().slice(0, 19);
    const sign = off < 0 ? "-" : "+";
    const abs = Math.abs(off);
    return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
  }

  const timeIn = (zone, ms) =>
    new Intl.DateTimeFormat("en-GB", { timeZone: zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(new Date(ms));
  const dateTimeIn = (zone, ms) =>
    new Intl.DateTimeFormat("en-GB", { timeZone: zone, weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(new Date(ms));

  function validZone(zone) {
    try { new Intl.DateTimeFormat("en-US", { timeZone: zone }); return true; } catch (_) { return false; }
  }

  const browserZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

  // The zone's short name at that instant ("EST", "GMT+1"), so a time never stands without its zone.
  function zoneName(zone, ms) {
    const parts = new Intl.DateTimeFormat("en-US", { timeZone: zone, timeZoneName: "short" }).formatToParts(new Date(ms));
    return (parts.find((p) => p.type === "timeZoneName") || {}).value || zone;
  }
  // "Wed 9 Dec, 12:00–13:00 EST": a span of time on one day, with its zone (the title names the zone in full).
  const whenText = (zone, start, end) => `${dateTimeIn(zone, start)}–${timeIn(zone, end)} ${zoneName(zone, start)}`;
  const dayLabel = (zone, ms) => new Intl.DateTimeFormat("en-GB", { timeZone: zone, weekday: "long", day: "numeric", month: "short" }).format(new Date(ms));

  // Display names of the organisation's people, looked up once per page (the address is the fallback).
  const names = new Map();
  function displayName(email) {
    const key = String(email || "").toLowerCase();
    if (!names.has(key)) {
      names.set(key, api("GET", `directory/users/${encodeURIComponent(key)}`)
        .then(({ data }) => (data && data.display_name) || null)
        .catch(() => null));
    }
    return names.get(key);
  }
  // A person by name, the address on hover; the name fills in when the directory answers.
  function personLabel(email, known) {
    const span = el("span", { class: "person-name", title: email, "data-email": email }, known || email);
    if (!known) displayName(email).then((name) => { if (name) span.textContent = name; });
    return span;
  }

  // "monday".."sunday" as "Mon-Fri", "Mon, Wed, Fri", "Sat-Sun".
  const WEEK = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
  function dayRanges(days) {
    const set = new Set((days || []).map((d) => String(d).toLowerCase()));
    const short = (d) => d[0].toUpperCase() + d.slice(1, 3);
    const out = [];
    let i = 0;
    while (i < WEEK.length) {
      if (!set.has(WEEK[i])) { i += 1; continue; }
      let j = i;
      while (j + 1 < WEEK.length && set.has(WEEK[j + 1])) j += 1;
      out.push(j - i >= 2 ? `${short(WEEK[i])}-${short(WEEK[j])}` : WEEK.slice(i, j + 1).map(short).join(", "));
      i = j + 1;
    }
    return out.join(", ") || "no days";
  }

  return { el, fill, add, api, ApiError, config, header, signinUrl, showError, offsetMinutes, zonedInstant, isoWithOffset, timeIn, dateTimeIn, validZone, browserZone, zoneName, whenText, dayLabel, displayName, personLabel, dayRanges };
})();
