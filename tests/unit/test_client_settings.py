"""Region and credentials resolution (``transports.clients.resolve_settings``), shared by the boto3 and
aiobotocore clients: the documented order, and the local endpoint's defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from sm_llm import SageMakerLLM
from sm_llm.errors import ConfigurationError
from sm_llm.transports.clients import ClientSettings, is_loopback_url, resolve_settings

_AWS_VARS = (
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_ENDPOINT_URL_S3", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE",
)


@pytest.fixture
def clean_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No AWS variables, and ~/.aws files in an empty temporary directory; returns that dir."""
    for name in _AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask instance metadata
    return tmp_path


def _profile_region(aws_dir: Path, region: str) -> None:
    (aws_dir / "config").write_text(f"[default]\nregion = {region}\n[profile other]\nregion = ap-south-1\n")


def test_aws_region_is_honoured(clean_aws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert resolve_settings(ClientSettings()).region_name == "eu-west-1"
    llm = SageMakerLLM(endpoint_name="ep", content_handler="tgi")
    assert llm.engine.transport.client().meta.region_name == "eu-west-1"


def test_region_order(clean_aws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """region_name > AWS_REGION > AWS_DEFAULT_REGION > the profile's region."""
    _profile_region(clean_aws, "ca-central-1")
    assert resolve_settings(ClientSettings()).region_name == "ca-central-1"
    assert resolve_settings(ClientSettings(profile_name="other")).region_name == "ap-south-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert resolve_settings(ClientSettings()).region_name == "us-west-2"
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert resolve_settings(ClientSettings(profile_name="other")).region_name == "eu-west-1"
    assert resolve_settings(ClientSettings(region_name="sa-east-1")).region_name == "sa-east-1"


def test_no_region_for_aws_is_one_clear_error(clean_aws: Path) -> None:
    assert resolve_settings(ClientSettings()).region_name is None
    llm = SageMakerLLM(endpoint_name="ep", content_handler="tgi")
    with pytest.raises(ConfigurationError, match="AWS_REGION / AWS_DEFAULT_REGION"):
        llm.engine.transport.client()


def test_missing_profile_is_one_clear_error(clean_aws: Path) -> None:
    with pytest.raises(ConfigurationError, match="profile 'nope' was not found"):
        resolve_settings(ClientSettings(profile_name="nope"))


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:8080", "https://127.1.2.3"]
)
def test_loopback_defaults_region_and_dummy_credentials(clean_aws: Path, url: str) -> None:
    resolved = resolve_settings(ClientSettings(endpoint_url=url))
    assert resolved.region_name == "us-east-1"
    assert (resolved.aws_access_key_id, resolved.aws_secret_access_key) == ("local", "local")


def test_loopback_from_the_environment_variable(clean_aws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "http://127.0.0.1:8080")
    resolved = resolve_settings(ClientSettings())
    assert resolved.region_name == "us-east-1" and resolved.aws_access_key_id == "local"
    # the variable names one service: an S3 client is not treated as local by it
    assert resolve_settings(ClientSettings(), "s3").region_name is None
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://localhost:9000")
    assert resolve_settings(ClientSettings(), "s3").aws_access_key_id == "local"


def test_loopback_keeps_configured_region_and_credentials(
    clean_aws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDREAL")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    resolved = resolve_settings(ClientSettings(endpoint_url="http://127.0.0.1:8080"))
    assert resolved.region_name == "eu-west-1"
    assert resolved.aws_access_key_id is None  # botocore finds the real ones itself
    explicit = ClientSettings(endpoint_url="http://127.0.0.1:1", aws_access_key_id="a", aws_secret_access_key="b")
    assert resolve_settings(explicit).aws_access_key_id == "a"


def test_loopback_keeps_profile_credentials(clean_aws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_aws / "credentials").write_text("[dev]\naws_access_key_id = AKIDDEV\naws_secret_access_key = s\n")
    resolved = resolve_settings(ClientSettings(endpoint_url="http://127.0.0.1:1", profile_name="dev"))
    assert resolved.aws_access_key_id is None and resolved.region_name == "us-east-1"

    # botocore ignores the environment's keys when a profile is named: a profile without
    # keys gets the dummy ones even then
    (clean_aws / "config").write_text("[profile bare]\nregion = eu-north-1\n")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    bare = resolve_settings(ClientSettings(endpoint_url="http://127.0.0.1:1", profile_name="bare"))
    assert (bare.aws_access_key_id, bare.region_name) == ("local", "eu-north-1")


def test_remote_endpoint_gets_no_dummy_credentials(clean_aws: Path) -> None:
    resolved = resolve_settings(ClientSettings(endpoint_url="https://runtime.example.com"))
    assert resolved.region_name is None and resolved.aws_access_key_id is None


@pytest.mark.parametrize(
    ("url", "loopback"),
    [("http://127.0.0.1:8080", True), ("http://localhost", True), ("http://[::1]:1", True),
     ("http://10.0.0.1", False), ("https://localhost.example.com", False), (None, False),
     ("http://[bad", False)],
)
def test_is_loopback_url(url: str | None, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback
