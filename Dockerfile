# The engine's image: the worker and the API run from it (`postmortem worker`, `postmortem api`).
# Multi-stage: build in a virtualenv, copy only that; no dev dependencies; a non-root user.
# Secrets come from the environment at run time (see .env.example), never from the image.

FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /venv
# The exact versions of requirements.lock (no dev tools, no dev server), then the project.
COPY pyproject.toml README.md requirements.lock ./
RUN /venv/bin/pip install --no-cache-dir --disable-pip-version-check -r requirements.lock
COPY cli.py config.py engine.py readmodel.py worker.py observability.py ./
COPY domain ./domain
COPY integrations ./integrations
COPY activities ./activities
COPY workflows ./workflows
COPY api ./api
COPY record ./record
RUN /venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /home/postmortem postmortem \
    && mkdir -p /data /config && chown postmortem /data
COPY --from=build /venv /venv
COPY teams.example.toml /config/teams.example.toml
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PM_DATA_DIR=/data \
    PM_TEAMS_FILE=/config/teams.toml \
    PM_API_HOST=0.0.0.0
USER postmortem
WORKDIR /home/postmortem
EXPOSE 8000 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PM_API_PORT', '8000') + '/healthz', timeout=4)"]
CMD ["postmortem", "api"]
