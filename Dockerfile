# yolowatch on the CPU: `docker build -t yolowatch . && docker run -p 8000:8000 yolowatch`
# then: curl -F file=@examples/shapes.jpg http://127.0.0.1:8000/predict
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    # ultralytics writes its settings here; yolowatch keeps it offline (see src/yolowatch/yolo/offline.py)
    YOLO_CONFIG_DIR=/tmp/yolowatch-config

# CPU-only torch first, so the ultralytics dependency does not pull the multi-GB CUDA build.
RUN pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[yolo]"

# Run as an unprivileged user.
RUN useradd --create-home --uid 10001 yolowatch
USER yolowatch

EXPOSE 8000
# 0.0.0.0 so the port can be published; the bundled demo model is served unless --model is given.
# A public address needs an admin API key: docker run -e YOLOWATCH_API_KEY=... (or add --allow-no-auth).
CMD ["yolowatch", "serve", "--host", "0.0.0.0", "--port", "8000"]
