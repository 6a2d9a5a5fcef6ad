# Production image: gunicorn serving wsgi:app; the database comes from DATABASE_URL.
# Run `todo-api migrate` (same image) before starting a new version.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PORT=8000
WORKDIR /app

RUN useradd --system --home-dir /app todo
COPY pyproject.toml setup.cfg README.md ./
COPY todo_api ./todo_api
# Editable install: the package reads sql/ and migrations/ from beside itself.
RUN pip install --editable . && rm -rf /root/.cache
COPY sql ./sql
COPY migrations ./migrations
COPY wsgi.py gunicorn.conf.py ./

USER todo
EXPOSE 8000
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
