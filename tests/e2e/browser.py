"""A minimal browser for the redirect legs: follows redirects across the service (http) and the
local cloud (https, verified against its CA), keeps cookies per host, submits form_post pages."""

from __future__ import annotations

import re
import ssl
from html import unescape
from http.cookies import SimpleCookie
from urllib.parse import urljoin, urlsplit

import httpx


class Browser:
    def __init__(self, service_url: str, *, ca_bundle: str) -> None:
        self.service_url = service_url
        self.client = httpx.Client(
            verify=ssl.create_default_context(cafile=ca_bundle), follow_redirects=False, timeout=30
        )
        self.cookies: dict[str, dict[str, str]] = {}  # host -> name -> value
        self.history: list[httpx.Response] = []

    def _cookie_header(self, url: str) -> dict[str, str]:
        jar = self.cookies.get(urlsplit(url).netloc, {})
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar else {}

    def _remember(self, response: httpx.Response) -> None:
        host = response.request.url.netloc.decode()
        for header in response.headers.get_list("set-cookie"):
            parsed: SimpleCookie = SimpleCookie()
            parsed.load(header)
            for name, morsel in parsed.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.get(host, {}).pop(name, None)
                else:
                    self.cookies.setdefault(host, {})[name] = morsel.value

    def request(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        url = urljoin(self.service_url + "/", url)
        headers = {**self._cookie_header(url), **dict(kwargs.pop("headers", {}) or {})}  # type: ignore[call-overload]
        response = self.client.request(method, url, headers=headers, **kwargs)  # type: ignore[arg-type]
        self._remember(response)
        self.history.append(response)
        return response

    def navigate(self, url: str, *, max_hops: int = 10) -> httpx.Response:
        """GET ``url`` and follow redirects and auto-submitting forms like a browser."""
        response = self.request("GET", url)
        for _ in range(max_hops):
            if response.is_redirect:
                response = self.request("GET", urljoin(str(response.request.url), response.headers["location"]))
                continue
            form = re.search(r'<form[^>]*method="post"[^>]*action="([^"]+)"', response.text, re.I)
            if form and "onload" in response.text:
                fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', response.text))
                response = self.request(
                    "POST", unescape(form.group(1)), data={k: unescape(v) for k, v in fields.items()}
                )
                continue
            return response
        raise AssertionError("too many redirects")

    def service_cookie(self, name: str) -> str | None:
        return self.cookies.get(urlsplit(self.service_url).netloc, {}).get(name)


# ---- the README's demo, as steps a browser test can walk ------------------------------------------------


class ReadmeStep:
    """One numbered step of the README's browser demo: its title, its words, and what it names.

    ``controls`` are the *italic* phrases (buttons, links, fields, headings a reader looks for), ``quotes``
    the "quoted" words the page shows, ``codes`` the `code` values typed in. A walk takes each one with
    ``control``/``quote``/``code``, which fail when the README does not say it; ``unused`` lists what the
    README says that the walk never took, so the two cannot drift apart either way."""

    def __init__(self, number: int, title: str, text: str) -> None:
        self.number = number
        self.title = title
        self.text = text
        codes = re.findall(r"`([^`]+)`", text)
        prose = re.sub(r"`[^`]+`", "", text)
        self.controls = re.findall(r"(?<![*\w])\*([^*]+?)\*(?![*\w])", prose)
        self.quotes = re.findall(r'"([^"]+)"', prose)
        self.codes = codes
        self._used: set[tuple[str, str]] = set()

    def _take(self, kind: str, value: str, pool: list[str]) -> str:
        assert value in pool, f"README demo step {self.number} ({self.title}) does not say {kind} {value!r}: {pool}"
        self._used.add((kind, value))
        return value

    def control(self, value: str) -> str:
        return self._take("control", value, self.controls)

    def quote(self, value: str) -> str:
        return self._take("quote", value, self.quotes)

    def code(self, value: str) -> str:
        return self._take("code", value, self.codes)

    def unused(self) -> list[str]:
        said = [("control", c) for c in self.controls] + [("quote", q) for q in self.quotes]
        return [f"{kind} {value!r}" for kind, value in said if (kind, value) not in self._used]


def readme_demo(readme: str) -> tuple[str, list[ReadmeStep]]:
    """The README's "The demo" section: its opening paragraph and its numbered steps, in order."""
    section = readme.split("## The demo: an interview booked, in a browser", 1)[1].split("\n## ", 1)[0]
    intro = section.split("\n1. ", 1)[0]
    steps = []
    for number, title, text in re.findall(
        r"^(\d+)\. \*\*(.+?)\.\*\* (.*?)(?=^\d+\. \*\*|^\S|\Z)", section, flags=re.M | re.S
    ):
        steps.append(ReadmeStep(int(number), title, " ".join(text.split())))
    return " ".join(intro.split()), steps


# What a person does in the page, by the words on the screen (JavaScript: Selenium's own lookups know
# no "visible text equals" for every element kind).
_FIND_BY_TEXT = """
const [label, selector, prefix, scope] = arguments;
const norm = (s) => (s || "").replace(/\\s+/g, " ").trim();
for (const node of (scope || document).querySelectorAll(selector)) {
  if (node.offsetParent === null) continue;
  const text = norm(node.innerText || node.value);
  if (text === label || (prefix && text.startsWith(label))) return node;
}
return null;
"""
_FIND_FIELD = """
const [label, scope] = arguments;
const norm = (s) => (s || "").replace(/\\s+/g, " ").trim();
for (const node of (scope || document).querySelectorAll("label")) {
  if (node.offsetParent === null) continue;
  const texts = [...node.childNodes].filter((c) => c.nodeType === Node.TEXT_NODE);
  const own = norm(texts.map((c) => c.textContent).join(" "));
  if (own === label) return node.querySelector("input, textarea, select");
}
return null;
"""


class Page:
    """Selenium, by the words a person reads: ``click("Book interview")``, ``field("Day")``, ``see("Saved")``."""

    CLICKABLE = "button, a, input[type=submit]"

    def __init__(self, driver: object, wait: object) -> None:
        self.driver = driver
        self.wait = wait  # wait(condition) -> the condition's first truthy answer, or fails

    def find(self, label: str, selector: str | None = None, *, prefix: bool = False, scope: object = None) -> object:
        found = self.wait(
            lambda d: d.execute_script(_FIND_BY_TEXT, label, selector or self.CLICKABLE, prefix, scope)  # type: ignore[attr-defined]
        )
        return found

    def click(self, label: str, *, prefix: bool = False, scope: object = None) -> None:
        node = self.find(label, prefix=prefix, scope=scope)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", node)  # type: ignore[attr-defined]
        node.click()  # type: ignore[attr-defined]

    def field(self, label: str, *, scope: object = None) -> object:
        return self.wait(lambda d: d.execute_script(_FIND_FIELD, label, scope))  # type: ignore[attr-defined]

    def fill(self, label: str, value: str, *, scope: object = None) -> None:
        node = self.field(label, scope=scope)
        node.clear()  # type: ignore[attr-defined]
        node.send_keys(value)  # type: ignore[attr-defined]

    def text(self) -> str:
        return " ".join(str(self.driver.execute_script("return document.body.innerText")).split())  # type: ignore[attr-defined]

    def see(self, words: str) -> None:
        """Wait until the page shows ``words`` (a trailing " ..." in the README stands for the rest)."""
        wanted = words.removesuffix(" ...")
        self.wait(lambda d: wanted in " ".join(str(d.execute_script("return document.body.innerText")).split()))
