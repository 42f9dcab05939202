"""The tenant's templates as its admins read, save and preview them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from shared.email.sending import compose_preview
from shared.email.templates import Rendered, check_template, default_template, template_name
from shared.errors import Forbidden, NotFound
from shared.models import Booking, EmailTemplate, User
from shared.ports import EmailDependencies


def get_template(deps: EmailDependencies, user: User, name: str) -> EmailTemplate:
    """The tenant's template, or the default when none was saved. Raises NotFound for an unknown name."""
    name = template_name(name)
    try:
        return deps.email_templates.get_template(user.tenant_id, name)
    except NotFound:
        return default_template(user.tenant_id, name)


def save_template(deps: EmailDependencies, user: User, name: str, body: dict[str, Any]) -> EmailTemplate:
    """Check and save a template. Raises Forbidden (not an admin), NotFound, InvalidTemplate naming the line."""
    name = template_name(name)
    if not user.is_tenant_admin:
        raise Forbidden("Only an administrator of your Office 365 tenant can change the email templates.")
    checked = check_template(user.tenant_id, name, body.get("subject"), body.get("html"))
    return deps.email_templates.save_template(replace(checked, updated_at=deps.clock.now(), updated_by=user.user_id))


def preview_template(
    deps: EmailDependencies, user: User, name: str, booking: Booking, body: dict[str, Any]
) -> Rendered:
    """The template (as saved, or the ``subject``/``html`` sent, checked as a save would) rendered for the
    booking, sent to nobody."""
    template = get_template(deps, user, name)
    if "subject" in body or "html" in body:
        template = check_template(
            user.tenant_id, template.name, body.get("subject", template.subject), body.get("html", template.html)
        )
    return compose_preview(booking, template, user)
