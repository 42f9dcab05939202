"""Sign a user in on the local stack and print their session, for calling the API with curl.

``scripts/session megan.bowen@contoso.example`` signs the user in through the console's browser legs,
as a browser would (the local cloud answers its sign-in page as that user through
``PUT /_control/auto-sign-in``, and is put back as it was afterwards), and prints ``SESSION=...``. The
session is the service's ordinary one: ``POST /api/auth/logout`` with it as Bearer ends it.
"""

from __future__ import annotations

import argparse
import sys

import httpx

from devtools.azurite import ROOT
from devtools.demo import Demo, DemoFailed

SESSION_COOKIE = "ics_session"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/session", description=__doc__.splitlines()[0])
    parser.add_argument("user", help="who signs in, e.g. megan.bowen@contoso.example")
    parser.add_argument("--console", default="http://localhost:7080")
    parser.add_argument("--cloud", default="https://127.0.0.1:8443")
    parser.add_argument("--ca-bundle", default=str(ROOT / ".devdata" / "cloud" / "ca-bundle.pem"))
    args = parser.parse_args(argv)
    demo = Demo(args.console, args.cloud, args.ca_bundle)
    try:
        me = demo.sign_in(args.user)
    except (DemoFailed, httpx.HTTPError) as err:
        print(f"Could not sign {args.user} in: {err}", file=sys.stderr)
        return 1
    finally:
        demo.restore_sign_in()
    session = demo.browser.session_cookie(args.console, SESSION_COOKIE)
    if not session:
        print("Signed in, but the service set no session cookie.", file=sys.stderr)
        return 1
    who = f"{me['user']['display_name']} ({me['user']['username']})"
    print(f"# {who}, until {me['session_expires_at']}", file=sys.stderr)
    print(f"SESSION={session}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
