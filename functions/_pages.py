"""Small HTML pages for the browser legs of consent and sign-in. Everything shown is escaped."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

import azure.functions as func

from functions._http import SECURITY_HEADERS, page_for, status_for
from shared import errors

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#222}"
    "h1{font-size:1.4rem}.box{border:1px solid #ddd;border-radius:8px;padding:1rem 1.25rem}"
    "li{margin:.3rem 0}a.button{display:inline-block;padding:.5rem 1rem;background:#0f6cbd;color:#fff;"
    "border-radius:4px;text-decoration:none}"
)


def page(
    title: str,
    paragraphs: list[str],
    *,
    status: int = 200,
    links: list[tuple[str, str]] | None = None,
    items: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> func.HttpResponse:
    body = [f"<h1>{escape(title)}</h1>", '<div class="box">']
    body += [f"<p>{escape(p)}</p>" for p in paragraphs]
    if items:
        body.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>")
    for label, href in links or []:
        body.append(f'<p><a class="button" href="{escape(href, quote=True)}">{escape(label)}</a></p>')
    body.append("</div>")
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>"
    )
    return func.HttpResponse(
        html,
        status_code=status,
        mimetype="text/html",
        charset="utf-8",
        headers={
            **SECURITY_HEADERS,
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            "Referrer-Policy": "no-referrer",
            **(headers or {}),
        },
    )


def redirect(location: str, *, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        status_code=302,
        headers={**SECURITY_HEADERS, "Location": location, "Referrer-Policy": "no-referrer", **(headers or {})},
    )


def error_page(
    flow: str,
    error: errors.ServiceError,
    *,
    links: Mapping[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> func.HttpResponse | None:
    """The page ``PAGE_BY_ERROR`` gives ``error`` on a browser leg of ``flow``, or None."""
    spec = page_for(flow, error)
    if spec is None:
        return None
    targets = {**{k: str(v) for k, v in error.details.items() if isinstance(v, str)}, **(links or {})}
    return page(
        spec.title,
        ([error.message] if spec.show_message else []) + list(spec.advice),
        status=status_for(error),
        links=[(label, targets[name]) for label, name in spec.links if targets.get(name)],
        headers=headers,
    )
