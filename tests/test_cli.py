"""The command line a newcomer meets first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from yolowatch.cli import main
from yolowatch.config import Settings, settings_from_env


def yolowatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "yolowatch", *args], capture_output=True, text=True, timeout=120)


def test_help_names_the_commands_and_the_first_step() -> None:
    """`yolowatch --help` lists serve, demo-data and demo-model and shows how to start."""
    result = yolowatch("--help")
    assert result.returncode == 0
    for word in ("serve", "demo-data", "demo-model", "curl -F file=@"):
        assert word in result.stdout


def test_serve_help_explains_the_defaults() -> None:
    """`yolowatch serve --help` says what is bound by default and where the model comes from."""
    result = yolowatch("serve", "--help")
    assert result.returncode == 0
    assert "127.0.0.1" in result.stdout and "--model" in result.stdout


@pytest.mark.yolo
def test_serve_with_a_missing_model_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A wrong --model path exits 2 with the path in the message, before binding anything."""
    assert main(["serve", "--model", str(tmp_path / "nope.pt")]) == 2
    assert "nope.pt" in capsys.readouterr().err


def test_bad_environment_value_names_the_variable() -> None:
    """A YOLOWATCH_* variable that is not the right type is reported by name."""
    with pytest.raises(ValueError, match="YOLOWATCH_PORT"):
        settings_from_env({"YOLOWATCH_PORT": "eighty"})
    assert settings_from_env({"YOLOWATCH_PORT": "9001"}).port == 9001
    assert settings_from_env({}) == Settings()


@pytest.mark.yolo
def test_demo_data_writes_the_requested_splits(tmp_path: Path) -> None:
    """`yolowatch demo-data --count` writes exactly the requested number of images per split."""
    out = tmp_path / "shapes"
    code = main(
        [
            "demo-data",
            "--out",
            str(out),
            "--count",
            "train=3",
            "--count",
            "val=2",
            "--count",
            "holdout=1",
            "--count",
            "holdout-drifted=1",
        ]
    )
    assert code == 0
    assert len(list((out / "images" / "train").glob("*.jpg"))) == 3
    assert (out / "holdout-drifted.yaml").exists()


@pytest.mark.yolo
def test_demo_data_rejects_an_unknown_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A --count for a split that does not exist is a usage error (status 2) naming the allowed splits."""
    assert main(["demo-data", "--out", str(tmp_path), "--count", "test=3"]) == 2
    assert "train, val, holdout, holdout-drifted" in capsys.readouterr().err


def test_importing_yolowatch_stays_light() -> None:
    """`import yolowatch` (middleware and store) pulls in neither torch, ultralytics nor OpenCV."""
    code = "import sys, yolowatch; print(sorted(m for m in ('torch', 'ultralytics', 'cv2') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_sidecar_needs_none_of_the_yolo_extra() -> None:
    """The sidecar (with its admin API and dashboard) builds with torch, ultralytics, OpenCV and scipy unimportable,
    as on `pip install yolowatch` without the `yolo` extra."""
    code = (
        "import sys\n"
        "for name in ('torch', 'ultralytics', 'cv2', 'scipy'): sys.modules[name] = None\n"
        "from yolowatch.config import Settings\n"
        "from yolowatch.sidecar import create_sidecar\n"
        "traffic, admin, monitor = create_sidecar(Settings(upstream='http://127.0.0.1:9', db='/tmp/unused.db'))\n"
        "print(type(traffic).__name__, monitor.deployment)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "WatchMiddleware demo"


@pytest.mark.yolo
def test_serve_and_sidecar_refuse_a_bad_rules_file_before_binding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad or missing rules file, or a webhook that is not a URL, is a usage error (status 2) before any file is
    opened."""
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "X"\nmetric = "p95_ms"\ncomparison = "sideways"\nthreshold = 1\n')
    assert main(["serve", "--alert-rules", str(rules), "--db", str(tmp_path / "a.db")]) == 2
    assert "rule 1: comparison must be one of above, below, drop, rise" in capsys.readouterr().err
    missing = str(tmp_path / "nope.toml")
    assert main(["sidecar", "--upstream", "http://127.0.0.1:9", "--alert-rules", missing]) == 2
    assert "nope.toml" in capsys.readouterr().err
    assert main(["serve", "--alert-webhook", "alertmanager:9093", "--db", str(tmp_path / "a.db")]) == 2
    assert "--alert-webhook must be an http(s) URL" in capsys.readouterr().err
    assert not (tmp_path / "a.db").exists()  # refused before anything was opened


def test_commands_of_the_yolo_extra_say_how_to_get_it() -> None:
    """On the light install (OpenCV hidden here), serve and traffic exit with status 2 and the pip line, rather
    than a traceback."""
    for command in (["serve"], ["traffic", "--plan", "normal:1"]):
        code = f"import sys; sys.modules['cv2'] = None; from yolowatch.cli import main; sys.exit(main({command!r}))"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        assert "needs the yolo extra" in result.stderr and "pip install 'yolowatch[yolo]'" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "command",
    [pytest.param(["serve"], marks=pytest.mark.yolo), ["sidecar", "--upstream", "http://127.0.0.1:9"]],
    ids=["serve", "sidecar"],
)
def test_public_address_without_a_key_is_refused(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Binding 0.0.0.0 with no admin key is a usage error (status 2) that names --allow-no-auth."""
    monkeypatch.setenv("YOLOWATCH_API_KEY", "")
    assert main([*command, "--host", "0.0.0.0", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "refusing to bind 0.0.0.0 with no admin API key" in err and "--allow-no-auth" in err


def test_sidecar_refuses_a_bad_upstream_and_one_port_for_both(capsys: pytest.CaptureFixture[str]) -> None:
    """An --upstream that is not http(s), one port for traffic and admin, or no upstream connection allowed is a
    usage error (status 2)."""
    assert main(["sidecar", "--upstream", "ftp://x"]) == 2
    assert "must be an http(s) URL" in capsys.readouterr().err
    assert main(["sidecar", "--upstream", "http://127.0.0.1:9", "--port", "8100", "--admin-port", "8100"]) == 2
    assert "different ports" in capsys.readouterr().err
    assert main(["sidecar", "--upstream", "http://127.0.0.1:9", "--upstream-connections", "0"]) == 2
    assert "--upstream-connections must be at least 1" in capsys.readouterr().err


def test_golden_and_sample_settings_are_checked_before_binding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A golden folder that holds no set, --golden-in-health alone, a low-confidence band that is not LOW,HIGH, or
    a band upside down: usage errors (status 2) that say what is wrong, before the database is opened."""
    upstream = ["sidecar", "--upstream", "http://127.0.0.1:9", "--db", str(tmp_path / "a.db")]
    assert main([*upstream, "--golden", str(tmp_path)]) == 2
    assert "golden.json" in capsys.readouterr().err
    assert main([*upstream, "--golden-in-health"]) == 2
    assert "--golden-in-health needs --golden DIR" in capsys.readouterr().err
    assert main([*upstream, "--sample-dir", str(tmp_path / "f"), "--sample-low-confidence", "0.5"]) == 2
    assert "--sample-low-confidence must be LOW,HIGH" in capsys.readouterr().err
    assert main([*upstream, "--sample-dir", str(tmp_path / "f"), "--sample-low-confidence", "0.6,0.2"]) == 2
    assert "0.6" in capsys.readouterr().err
    assert main([*upstream, "--golden", str(tmp_path), "--golden-every", "0"]) == 2
    assert "--golden-every must be positive" in capsys.readouterr().err
    assert not (tmp_path / "a.db").exists() and not (tmp_path / "f").exists()


def test_samples_and_golden_commands_refuse_what_they_cannot_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No sample folder, an empty one to export, a golden record against nothing listening: status 2 with the
    reason; listing an empty folder says so."""
    assert main(["samples", "list", "--dir", str(tmp_path / "none")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["samples", "list", "--dir", str(tmp_path)]) == 0
    assert "no kept frames" in capsys.readouterr().out
    assert main(["samples", "export", "--dir", str(tmp_path), "--out", str(tmp_path / "ds")]) == 2
    assert "nothing to export" in capsys.readouterr().err
    assert main(["samples", "list", "--dir", str(tmp_path), "--since", "yesterday"]) == 2
    capsys.readouterr()
    image = tmp_path / "a.jpg"
    image.write_bytes(b"\xff\xd8\xff")
    assert main(["golden", "record", "--endpoint", "http://127.0.0.1:9/predict", "--out", str(tmp_path / "g"),
                 str(image)]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "a.jpg" in err and "127.0.0.1:9" in err and not (tmp_path / "g" / "golden.json").exists()


def test_alert_channels_and_otlp_are_checked_before_binding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SMTP URL without sender and recipients, one with a password in it, a chat URL that is not http(s), an
    unknown severity, an OTLP endpoint that is no URL: usage errors (status 2) that never echo a secret."""
    upstream = ["sidecar", "--upstream", "http://127.0.0.1:9", "--db", str(tmp_path / "a.db")]
    assert main([*upstream, "--smtp-url", "smtp://alerts@mail.example.com:587"]) == 2
    assert "--alert-email-from and --alert-email-to" in capsys.readouterr().err
    email = ["--alert-email-from", "a@example.com", "--alert-email-to", "b@example.com"]
    assert main([*upstream, *email, "--smtp-url", "smtp://alerts:hunter2@mail.example.com:587"]) == 2
    err = capsys.readouterr().err
    assert "YOLOWATCH_SMTP_PASSWORD" in err and "hunter2" not in err
    monkeypatch.setenv("YOLOWATCH_ALERT_CHAT", "ftp://hooks.example.com/s3cret-token")
    assert main(upstream) == 2
    err = capsys.readouterr().err
    assert "apprise does not understand the URL ftp://…" in err and "s3cret-token" not in err
    monkeypatch.delenv("YOLOWATCH_ALERT_CHAT")
    assert main([*upstream, "--alert-chat-severity", "page"]) == 2
    assert "warning and/or critical" in capsys.readouterr().err
    assert main([*upstream, "--otlp-endpoint", "otel-collector:4318"]) == 2
    assert "--otlp-endpoint must be an http(s) URL" in capsys.readouterr().err
    assert main([*upstream, "--otlp-traces", "--otlp-trace-sample", "10"]) == 2
    assert "--otlp-trace-sample must be a share between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "a.db").exists()
