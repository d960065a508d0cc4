# Fixative workbench: docker build -t fixative . &&
#   docker run -p 8501:8501 -e FIXATIVE_PASSWORD=... -v fixative-store:/data/store fixative
# It listens on every interface inside the container, so it refuses to start without
# FIXATIVE_PASSWORD.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FIXATIVE_STORE=/data/store \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    STREAMLIT_SERVER_HEADLESS=true

RUN groupadd --system --gid 10001 fixative \
    && useradd --system --uid 10001 --gid fixative --create-home --home-dir /home/fixative fixative \
    && mkdir -p /data/store \
    && chown fixative:fixative /data/store

WORKDIR /app

COPY requirements.txt .
# quarto-cli (from PyPI) renders model cards and monitoring dashboards; it downloads Quarto
# at build time. Quarto runs the documents' Python chunks through Jupyter.
RUN pip install -r requirements.txt "quarto-cli>=1.5" "jupyter>=1.0"

COPY --chown=fixative:fixative app.py ./
COPY --chown=fixative:fixative core ./core
COPY --chown=fixative:fixative pages ./pages
COPY --chown=fixative:fixative .streamlit ./.streamlit

USER 10001:10001
VOLUME ["/data/store"]
EXPOSE 8501

# The slim image has no curl: ask streamlit's health endpoint with Python.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).status == 200 else 1)"]

# FIXATIVE_WATCH=1 also starts the watcher (scheduled checks and notifications).
ENTRYPOINT ["python", "-m", "core.workbench.container"]
CMD ["python", "-m", "core", "workbench", "--public", "--port", "8501"]
