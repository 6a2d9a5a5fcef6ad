"""The WSGI entry point: `gunicorn -c gunicorn.conf.py wsgi:app`."""

from todo_api import create_app

app = create_app()
