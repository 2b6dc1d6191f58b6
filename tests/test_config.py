"""Settings: read from the environment in one place, with one boolean vocabulary, and checked before anything binds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from helpers import admin_client, registered_store
from yolowatch.config import Settings, settings_from_env
from yolowatch.store import Store


@pytest.mark.parametrize(("raw", "expected"), [("on", True), ("yes", True), ("1", True), ("off", False), ("no", False)])
def test_boolean_settings_take_the_one_vocabulary(raw: str, expected: bool) -> None:
    """YOLOWATCH_* booleans read every spelling the query strings and form fields read."""
    assert settings_from_env({"YOLOWATCH_METRICS_NEED_KEY": raw}).metrics_need_key is expected


def test_admin_query_booleans_take_the_same_vocabulary(tmp_path: Path) -> None:
    """Regression (`on` worked in the environment but was a 400 in a query string): ?sparkline=on and
    ?archived=yes are read as true, and a word outside the vocabulary is a 400 that lists it."""
    asyncio.run(registered_store(tmp_path / "b.db"))
    with admin_client(Store(tmp_path / "b.db")) as client:
        assert "sparkline" in client.get("/api/deployments/demo/metrics?range=1h&sparkline=on").json()
        assert "sparkline" not in client.get("/api/deployments/demo/metrics?range=1h&sparkline=off").json()
        assert [d["id"] for d in client.get("/api/deployments?archived=yes").json()["deployments"]] == ["demo"]
        refused = client.get("/api/deployments/demo/metrics?sparkline=perhaps")
        assert refused.status_code == 400 and "true/false, 1/0, yes/no or on/off" in refused.json()["error"]


def test_empty_environment_values_mean_the_default() -> None:
    """`YOLOWATCH_PORT=` (as a compose file writes an unset variable) keeps the default instead of failing."""
    assert settings_from_env({"YOLOWATCH_PORT": "", "YOLOWATCH_ALERTS": " "}) == Settings()


@pytest.mark.parametrize(
    ("command", "fields", "message"),
    [
        ("serve", {"model": Path("/nonexistent/best.pt")}, "model weights not found"),
        ("sidecar", {"upstream": "ftp://upstream"}, "--upstream must be an http(s) URL"),
        ("sidecar", {"upstream": "http://127.0.0.1:9000", "admin_port": 8000}, "give them different ports"),
        ("sidecar", {"upstream": "http://127.0.0.1:9000", "probe_image": "/nonexistent.jpg"}, "is not a file"),
        ("sidecar", {"upstream": "http://127.0.0.1:9000", "port": 70000, "admin_port": 8001}, "between 0 and 65535"),
        ("sidecar", {"upstream": "http://127.0.0.1:9000", "upstream_connections": 0}, "at least 1; got 0"),
        ("sidecar", {"upstream": "http://127.0.0.1:9000", "upstream_timeout_s": 0.0}, "--timeout-s must be positive"),
        ("serve", {"time_scale": 0.0}, "TIME_SCALE must be positive"),
        ("serve", {"alert_webhook": "mailto:ops@example.com"}, "--alert-webhook must be an http(s) URL"),
        ("serve", {"log_format": "xml"}, "text or json"),
        ("serve", {"host": "0.0.0.0"}, "refusing to bind 0.0.0.0 with no admin API key"),
        ("serve", {"api_key_file": "/nonexistent/keys"}, "cannot read the API key file"),
        ("serve", {"db": "postgresql://yolowatch:a/b@db/x"}, "must be percent-encoded"),
        ("serve", {"db_pool_size": 0}, "--db-pool-size must be at least 1"),
        ("serve", {"db": "postgresql://yolowatch:hunter2@/db"}, "names no host: use postgresql://user"),
    ],
)
def test_validate_says_what_is_wrong(command: str, fields: dict[str, object], message: str) -> None:
    """Each bad combination is refused before binding, with a sentence that says what to change."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings().with_overrides(**fields).validate(command)


def test_validate_accepts_what_is_allowed(tmp_path: Path) -> None:
    """A public address with a key file, or with --allow-no-auth, is fine; so are the defaults."""
    keys = tmp_path / "keys"
    keys.write_text("# admin keys\nk-1\n")
    Settings().validate("serve")
    Settings(host="0.0.0.0", api_key_file=str(keys)).validate("serve")
    Settings(host="0.0.0.0", allow_no_auth=True).validate("serve")
    Settings(upstream="http://127.0.0.1:9000").validate("sidecar")
    Settings(db="postgresql://u:p@db.internal:5432/yolowatch", region="factory-3@52.37,4.90").validate("serve")
    Settings(region="on-prem").validate("serve")  # a label of one's own: kept, not pinned (compose says so)
    assert "hunter2" not in repr(Settings(db="postgresql://u:hunter2@db/x"))
    with pytest.raises(ValueError) as refused:
        Settings(db="postgresql://yolowatch:hunter2@/db").validate("serve")
    assert "hunter2" not in str(refused.value) and "yolowatch:***@" in str(refused.value)
    assert Settings(api_key_file=str(keys), api_key="k-0").admin_keys() == ("k-0", "k-1")
    empty = tmp_path / "empty"
    empty.write_text("# nothing yet\n")
    with pytest.raises(ValueError, match="holds no key"):
        Settings(api_key_file=str(empty)).validate("serve")
