# syntax=docker/dockerfile:1
# Production image: gunicorn serving wsgi:app; the database comes from DATABASE_URL.
# Run `todo-api migrate` (same image) before starting a new version; compose.yaml does.

# Build stage: wheels of the project and of its dependencies. sql/ and migrations/ travel inside
# the project's wheel as package data (setup.cfg package_dir), so nothing else is copied later.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY todo_api ./todo_api
COPY sql ./sql
COPY migrations ./migrations
RUN pip wheel --wheel-dir /wheels .

# Runtime stage: those wheels installed (no checkout, no build tools), plus the two entry files.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PORT=8000
WORKDIR /app
RUN useradd --system --home-dir /app todo
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels todo-api
COPY wsgi.py gunicorn.conf.py ./

USER todo
EXPOSE 8000
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
