"""gunicorn settings for the floor app: the service's own settings, without its pool hooks."""

import runpy
from pathlib import Path

_service = runpy.run_path(str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py"))
for _name in (
    "bind",
    "workers",
    "worker_class",
    "threads",
    "worker_connections",
    "timeout",
    "keepalive",
    "accesslog",
    "logger_class",
    "logconfig_dict",
    "backlog",
):
    if _name in _service:
        globals()[_name] = _service[_name]
