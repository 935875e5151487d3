"""``lanas submit`` never sends the auth token in clear to another machine, and warns when
the token file is readable by others (no Ray needed: refused before any connection)."""

import pytest
from conftest import lanas

from lanas_pipeline.errors import PipelineError
from lanas_pipeline.submit import check_transport, read_token


@pytest.mark.parametrize(
    "address",
    ["http://127.0.0.1:8265", "http://localhost:8265", "http://[::1]:8265", "127.0.0.1:8265", "https://head:8265"],
)
def test_loopback_http_and_any_https_are_accepted(address):
    check_transport(address)


@pytest.mark.parametrize("address", ["http://10.0.0.5:8265", "http://head.example.org:8265", "head:8265"])
def test_plain_http_to_another_host_is_refused_unless_allowed(address):
    with pytest.raises(PipelineError, match="refusing to send the Ray auth token in clear over http://"):
        check_transport(address)
    check_transport(address, allow_insecure_http=True)


def test_another_scheme_is_named():
    with pytest.raises(PipelineError, match="expected an http:// or https:// Jobs API address"):
        check_transport("ray://10.0.0.5:10001")


def test_the_command_refuses_before_reading_the_token_or_connecting(tmp_path, capsys):
    missing = tmp_path / "no-token-here"
    r = lanas(capsys, "submit", "--address", "http://192.0.2.7:8265", "--config", "configs/smoke.yaml",
                "--token-file", str(missing))  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "lanas: error: refusing to send the Ray auth token in clear over http:// to 192.0.2.7: use https://, "
        "an SSH tunnel to 127.0.0.1, or pass --allow-insecure-http"
    ]
    r = lanas(capsys, "submit", "--address", "http://192.0.2.7:8265", "--status", "x", "--token-file", str(missing))
    assert r.returncode == 2 and "refusing to send the Ray auth token" in r.stderr


def test_a_token_file_others_can_read_is_warned_about(tmp_path, capsys):
    f = tmp_path / "auth_token"
    f.write_text("secret\n")
    f.chmod(0o600)
    assert read_token(str(f)) == "secret" and capsys.readouterr().err == ""
    f.chmod(0o644)
    assert read_token(str(f)) == "secret"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "can be read by group or others (mode 644)" in err[0] and f"chmod 600 {f}" in err[0]
