"""The local cloud's HTTPS: trusted only through its own CA, never by switching verification off."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import certifi
import httpx
import pytest
from cryptography import x509

from devtools.cloud.server import RunningCloud
from devtools.cloud.tls import create_tls_files

REPO = Path(__file__).resolve().parents[2]
OPENID = "/contoso.example/v2.0/.well-known/openid-configuration"


def test_a_client_without_the_bundle_refuses_the_certificate(cloud: RunningCloud) -> None:
    # trust_env=False: only certifi's public roots, as on a machine that never heard of the local CA.
    with httpx.Client(trust_env=False) as client, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        client.get(cloud.base_url + OPENID)


def test_a_client_with_the_local_ca_connects(cloud: RunningCloud) -> None:
    context = ssl.create_default_context(cafile=str(cloud.ca_cert))
    with httpx.Client(verify=context, trust_env=False) as client:
        assert client.get(cloud.base_url + OPENID).status_code == 200


def test_the_bundle_holds_the_public_roots_and_the_local_ca(cloud: RunningCloud) -> None:
    bundle = cloud.ca_bundle.read_text()
    assert Path(certifi.where()).read_text().strip() in bundle
    assert cloud.ca_cert.read_text().strip() in bundle
    context = ssl.create_default_context(cafile=str(cloud.ca_bundle))
    with httpx.Client(verify=context, trust_env=False) as client:
        assert client.get(cloud.base_url + OPENID).status_code == 200


def test_the_server_certificate_names_every_loopback_address(tmp_path: Path) -> None:
    files = create_tls_files(tmp_path)
    leaf = x509.load_pem_x509_certificates(files.server_cert.read_bytes())[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert files.server_key.stat().st_mode & 0o077 == 0


def test_localhost_verifies_as_well(cloud: RunningCloud) -> None:
    context = ssl.create_default_context(cafile=str(cloud.ca_cert))
    with httpx.Client(verify=context, trust_env=False) as client:
        assert client.get(f"https://localhost:{cloud.port}{OPENID}").status_code == 200


def test_no_code_of_the_cloud_or_its_tests_turns_verification_off() -> None:
    forbidden = re.compile(r"verify\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False|_create_unverified_context")
    offenders = [
        str(path.relative_to(REPO))
        for root in (REPO / "devtools" / "cloud", REPO / "tests" / "cloud")
        for path in root.rglob("*.py")
        if path != Path(__file__).resolve() and forbidden.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
