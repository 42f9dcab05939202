"""Email templates: the defaults, the check every template passes when saved, and rendering.

Templates are Jinja2 run in ``ImmutableSandboxedEnvironment`` with autoescaping on (the subject, plain text,
without it) over a fixed set of variables. A template is checked when an admin saves it, never first at send
time: it must compile, name only the known variables (and only their known fields), use only the filters and
tests listed here, call nothing, multiply or raise to a power, import or include nothing, read no attribute
that starts with ``_``, and its HTML may hold no script, style, frame, form or embedded object, no ``on...``
handler and no ``javascript:``, ``vbscript:`` or ``data:`` link. A refusal is ``InvalidTemplate`` (400)
naming the field and the line. The rendered HTML is sanitized with ``nh3`` before it is sent (the candidate's
name, the location and the recruiter's text are escaped by the autoescaping; nh3 is the second wall).

Jinja2 and nh3 are imported on first use only, so importing this module costs nothing at start.
"""

from __future__ import annotations

import functools
import re
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.errors import InvalidTemplate, NotFound
from shared.models import EmailTemplate
from shared.text import has_forbidden_characters

if TYPE_CHECKING:
    from jinja2 import nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

# The templates a tenant has, each with a default.
TEMPLATE_NAMES = ("invitation", "confirmation", "reschedule", "cancellation", "reminder")
MAX_SUBJECT = 255
MAX_HTML = 32 * 1024
TEMPLATE_NAME = "<template>"

PERSON = frozenset({"name", "email"})
# Every variable a template may use, and the fields of those that have fields.
VARIABLES: dict[str, frozenset[str] | None] = {
    "candidate": PERSON,
    "recruiter": PERSON,
    "interviewers": PERSON,  # a list of people: its items have these fields
    "subject": None,
    "date": None,
    "start": None,
    "end": None,
    "start_time": None,
    "end_time": None,
    "time_zone": None,
    "duration_minutes": None,
    "teams_link": None,
    "location": None,
}
LISTS = frozenset({"interviewers"})
LOOP_FIELDS = frozenset({"index", "index0", "first", "last", "length", "revindex", "revindex0"})
FILTERS = frozenset(
    {
        "capitalize",
        "default",
        "d",
        "e",
        "escape",
        "first",
        "join",
        "last",
        "length",
        "count",
        "lower",
        "upper",
        "title",
        "trim",
        "truncate",
        "replace",
        "string",
        "int",
        "wordcount",
        "striptags",
    }
)
TESTS = frozenset({"defined", "undefined", "none", "string", "number", "eq", "ne", "equalto", "odd", "even"})
_FORBIDDEN_MARKUP = re.compile(
    r"<\s*/?\s*(?:script|style|iframe|frame|frameset|object|embed|applet|form|input|button|textarea|select|link|"
    r"meta|base|svg|math|template)\b"
    r"|\son[a-z]+\s*="
    r"|(?:javascript|vbscript|data)\s*:",
    re.IGNORECASE,
)

TEAMS = (
    '{% if teams_link %}<p>Join on Microsoft Teams: <a href="{{ teams_link }}">{{ teams_link }}</a></p>{% endif %}\n'
)
DEFAULTS: dict[str, tuple[str, str]] = {
    "invitation": (
        "Invitation to interview: {{ subject }}",
        "<p>Dear {{ candidate.name }},</p>\n"
        "<p>We would like to invite you to interview with us on <strong>{{ date }}</strong> at "
        "<strong>{{ start_time }}</strong> ({{ time_zone }}).</p>\n"
        "<p>You will meet {% for person in interviewers %}{{ person.name }}{% if not loop.last %}, "
        "{% endif %}{% endfor %}.</p>\n" + TEAMS + "{% if location %}<p>Location: {{ location }}</p>{% endif %}\n"
        "<p>Kind regards,<br>{{ recruiter.name }}</p>",
    ),
    "confirmation": (
        "Interview confirmed: {{ date }} at {{ start_time }}",
        "<p>Dear {{ candidate.name }},</p>\n"
        "<p>Your interview is confirmed for <strong>{{ date }}</strong>, {{ start_time }} to {{ end_time }} "
        "({{ time_zone }}).</p>\n"
        "<p>You will meet {% for person in interviewers %}{{ person.name }}{% if not loop.last %}, "
        "{% endif %}{% endfor %}.</p>\n" + TEAMS + "{% if location %}<p>Location: {{ location }}</p>{% endif %}\n"
        "<p>Reply to this email if you have any question.</p>\n"
        "<p>Kind regards,<br>{{ recruiter.name }}</p>",
    ),
    "reschedule": (
        "Interview moved: now {{ date }} at {{ start_time }}",
        "<p>Dear {{ candidate.name }},</p>\n"
        "<p>Your interview has moved. It now takes place on <strong>{{ date }}</strong>, {{ start_time }} to "
        "{{ end_time }} ({{ time_zone }}).</p>\n"
        + TEAMS
        + "{% if location %}<p>Location: {{ location }}</p>{% endif %}\n"
        "<p>Kind regards,<br>{{ recruiter.name }}</p>",
    ),
    "cancellation": (
        "Interview cancelled: {{ date }} at {{ start_time }}",
        "<p>Dear {{ candidate.name }},</p>\n"
        "<p>We are sorry: your interview on {{ date }} at {{ start_time }} ({{ time_zone }}) is cancelled. "
        "We will be in touch.</p>\n"
        "<p>Kind regards,<br>{{ recruiter.name }}</p>",
    ),
    "reminder": (
        "Reminder: your interview on {{ date }} at {{ start_time }}",
        "<p>Dear {{ candidate.name }},</p>\n"
        "<p>A reminder that your interview is on <strong>{{ date }}</strong>, {{ start_time }} to {{ end_time }} "
        "({{ time_zone }}).</p>\n" + TEAMS + "{% if location %}<p>Location: {{ location }}</p>{% endif %}\n"
        "<p>Kind regards,<br>{{ recruiter.name }}</p>",
    ),
}

SAMPLE: dict[str, Any] = {
    "candidate": {"name": "Sam Candidate", "email": "sam@example.org"},
    "recruiter": {"name": "Megan Bowen", "email": "megan.bowen@contoso.example"},
    "interviewers": [
        {"name": "Alex Wilber", "email": "alex.wilber@contoso.example"},
        {"name": "Lynne Robbins", "email": "lynne.robbins@contoso.example"},
    ],
    "subject": "Interview: Sam Candidate",
    "date": "Tuesday 3 March 2026",
    "start": "Tuesday 3 March 2026 14:00",
    "end": "Tuesday 3 March 2026 15:00",
    "start_time": "14:00",
    "end_time": "15:00",
    "time_zone": "UTC+01:00",
    "duration_minutes": 60,
    "teams_link": "https://teams.microsoft.com/l/meetup-join/example",
    "location": "Room 4",
}


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str


def template_name(raw: str) -> str:
    """Raises NotFound for a name that is not one of the templates."""
    if raw not in TEMPLATE_NAMES:
        raise NotFound(f"There is no email template called that; the templates are {', '.join(TEMPLATE_NAMES)}.")
    return raw


def default_template(tenant_id: str, name: str) -> EmailTemplate:
    subject, html = DEFAULTS[name]
    return EmailTemplate(tenant_id=tenant_id, name=name, subject=subject, html=html)


# ---- the environments ---------------------------------------------------------------------------
@functools.cache
def _environment(autoescape: bool) -> ImmutableSandboxedEnvironment:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(autoescape=autoescape, undefined=StrictUndefined)
    # Only the listed filters and tests exist: one that is not listed does not compile.
    env.filters = {name: f for name, f in env.filters.items() if name in FILTERS}
    env.tests = {name: t for name, t in env.tests.items() if name in TESTS}
    env.globals = {}
    return env


def _refuse(field: str, line: int | None, message: str) -> InvalidTemplate:
    where = f" (line {line})" if line is not None else ""
    return InvalidTemplate(f"The template's {field}{where}: {message}", field=field, line=line)


# ---- the check at save time -----------------------------------------------------------------------
def _check_nodes(tree: nodes.Template, field: str) -> None:
    from jinja2 import nodes

    def names(target: nodes.Node) -> list[str]:
        found = [target] if isinstance(target, nodes.Name) else list(target.find_all(nodes.Name))
        return [n.name for n in found if isinstance(n, nodes.Name)]

    people: set[str] = set()  # loop variables over interviewers
    locals_: set[str] = set()  # every other name the template binds itself
    for loop in tree.find_all(nodes.For):
        iterated = loop.iter
        if isinstance(iterated, nodes.Name) and iterated.name in LISTS:
            people.update(names(loop.target))
        else:
            locals_.update(names(loop.target))
    for assign in tree.find_all(nodes.Assign):
        locals_.update(names(assign.target))
    forbidden = (nodes.Call, nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends, nodes.Macro, nodes.CallBlock)
    for power in tree.find_all((nodes.Pow, nodes.Mul)):  # '9 ** 9 ** 9', "'x' * 10 ** 9": time and memory
        raise _refuse(field, power.lineno, "multiplication and powers are not allowed in a template.")
    for bad in tree.find_all(forbidden):
        what = "calls" if isinstance(bad, nodes.Call) else f"{type(bad).__name__.lower()} tags"
        raise _refuse(field, bad.lineno, f"{what} are not allowed in a template.")
    for used in tree.find_all((nodes.Filter, nodes.Test)):
        name = str(getattr(used, "name", ""))
        allowed = FILTERS if isinstance(used, nodes.Filter) else TESTS
        if name not in allowed:
            kind = "filter" if isinstance(used, nodes.Filter) else "test"
            raise _refuse(field, used.lineno, f"the {kind} '{name}' is not allowed.")
    for node in tree.find_all(nodes.Getattr):
        owner = node.node
        if node.attr.startswith("_"):
            raise _refuse(field, node.lineno, f"'{node.attr}' cannot be read in a template.")
        if isinstance(owner, nodes.Name):
            fields: frozenset[str] | None
            if owner.name in people:
                fields = PERSON
            elif owner.name == "loop":
                fields = LOOP_FIELDS
            elif owner.name in VARIABLES and owner.name not in LISTS:
                fields = VARIABLES[owner.name]
            else:
                continue  # an unknown name is reported below
            if fields is None or node.attr not in fields:
                raise _refuse(field, node.lineno, f"'{owner.name}' has no field '{node.attr}'.")
    for item in tree.find_all(nodes.Getitem):
        key = item.arg
        if isinstance(key, nodes.Const) and isinstance(key.value, str) and key.value.startswith("_"):
            raise _refuse(field, item.lineno, f"'{key.value}' cannot be read in a template.")
    for used_name in tree.find_all(nodes.Name):
        name = used_name.name
        if used_name.ctx != "load" or name in VARIABLES or name in people or name in locals_ or name == "loop":
            continue
        known = ", ".join(sorted(VARIABLES))
        raise _refuse(field, used_name.lineno, f"unknown variable '{name}'; the variables are {known}.")


def _line_of_error(err: BaseException) -> int | None:
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if frame.filename == TEMPLATE_NAME:
            return frame.lineno
    return getattr(err, "lineno", None)


def _check_source(source: str, field: str, *, autoescape: bool) -> None:
    from jinja2 import TemplateError, TemplateSyntaxError

    env = _environment(autoescape)
    try:
        tree = env.parse(source, filename=TEMPLATE_NAME)
    except TemplateSyntaxError as err:
        raise _refuse(field, err.lineno, f"it does not compile: {err.message}") from None
    _check_nodes(tree, field)
    try:
        env.from_string(source).render(SAMPLE)
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as err:  # SecurityError, ...
        raise _refuse(field, _line_of_error(err), f"it cannot be rendered: {err}") from None


def check_template(tenant_id: str, name: str, subject: object, html: object) -> EmailTemplate:
    """The template an admin saves, checked. Raises InvalidTemplate naming the field and the line."""
    if not isinstance(subject, str) or not subject.strip():
        raise _refuse("subject", None, "a subject is required.")
    if not isinstance(html, str) or not html.strip():
        raise _refuse("html", None, "an HTML body is required.")
    if len(subject) > MAX_SUBJECT:
        raise _refuse("subject", None, f"it is longer than {MAX_SUBJECT} characters.")
    if len(html.encode("utf-8")) > MAX_HTML:
        raise _refuse("html", None, f"it is larger than {MAX_HTML} bytes.")
    if has_forbidden_characters(subject):
        raise _refuse("subject", None, "it holds line breaks, control or text-direction characters.")
    for number, line in enumerate(html.splitlines(), start=1):
        if has_forbidden_characters(line, multiline=True):
            raise _refuse("html", number, "it holds control or text-direction characters.")
        found = _FORBIDDEN_MARKUP.search(line)
        if found is not None:
            raise _refuse("html", number, f"'{found.group().strip()}' is not allowed in an email.")
    _check_source(subject, "subject", autoescape=False)
    _check_source(html, "html", autoescape=True)
    return EmailTemplate(tenant_id=tenant_id, name=name, subject=subject.strip(), html=html)


# ---- rendering ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _compiled(source: str, autoescape: bool) -> Any:
    return _environment(autoescape).from_string(source)


def sanitize(html: str) -> str:
    """HTML safe to send: nh3's allow-list of tags and attributes, links kept with rel=noopener noreferrer."""
    import nh3

    return nh3.clean(html, url_schemes={"https", "http", "mailto"}, link_rel="noopener noreferrer")


def render(template: EmailTemplate, variables: Mapping[str, Any]) -> Rendered:
    """The subject (one plain line) and the sanitized HTML. The template was checked when saved."""
    subject = str(_compiled(template.subject, False).render(variables))
    subject = " ".join(subject.split())[:MAX_SUBJECT]
    html = sanitize(str(_compiled(template.html, True).render(variables)))
    return Rendered(subject=subject, html=html)
