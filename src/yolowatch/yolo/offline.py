"""Keep ultralytics off the network: call `prepare_ultralytics()` before importing it.

Each switch below closes one place where ultralytics would otherwise reach out:
- YOLO_OFFLINE=1 stops the DNS/TCP reachability check run at import
  (`ultralytics.utils.ONLINE`), and with it every "if ONLINE" download or
  update check (pip update notice, usage events, sentry);
- YOLO_AUTOINSTALL=false stops `check_requirements` from running pip;
- settings `sync=False` turns usage events off even if a later check says online;
- a font named Arial.ttf in the config dir satisfies `check_font`, which every
  `val`/`train` calls through `check_det_dataset` and which would otherwise send
  a HEAD request to the assets server (we copy matplotlib's DejaVu Sans there);
- YOLO_CONFIG_DIR gets a yolowatch-owned default so none of this edits the
  user's own ultralytics settings.
Platform streaming (`ULTRALYTICS_API_KEY`) is dropped by the trainer itself.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

log = logging.getLogger("yolowatch")

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def default_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "yolowatch" / "ultralytics"


def prepare_ultralytics() -> None:
    """Set the environment ultralytics reads at import, then switch off sync and font downloads."""
    if "ultralytics" in sys.modules and os.environ.get("YOLO_OFFLINE") != "1":
        log.warning("ultralytics was imported before yolowatch prepared it; it may have checked the network")
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    if not os.environ.get("YOLO_CONFIG_DIR"):
        config_dir = default_config_dir()
        try:
            config_dir.mkdir(parents=True, exist_ok=True)
            os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
        except OSError:
            pass  # ultralytics falls back to a temp dir by itself

    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR

    if SETTINGS.get("sync"):
        SETTINGS.update(sync=False)  # type: ignore[no-untyped-call]  # ultralytics is not typed there
    _install_fallback_fonts(Path(USER_CONFIG_DIR))


def _install_fallback_fonts(config_dir: Path) -> None:
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in FONT_NAMES:
        target = config_dir / name
        if not target.exists() and source.exists():
            try:
                shutil.copyfile(source, target)
            except OSError:
                log.warning("could not write %s; ultralytics may try to download it", target)
