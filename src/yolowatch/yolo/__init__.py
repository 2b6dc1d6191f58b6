"""The `yolo` extra: the bundled predict app and `serve`, upload decoding, holdout scoring, offline ultralytics.

Needs ultralytics and OpenCV (`pip install 'yolowatch[yolo]'`); no module of the light install imports
this package (an import-linter contract checks it).
"""
