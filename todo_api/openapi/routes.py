"""GET /openapi.json and GET /docs: the document as built at start-up, and Swagger UI rendering it,
whose files come from the `flask-swagger-ui` wheel and are served here, so the page works offline."""

from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Blueprint, Response, current_app, render_template, send_from_directory

from ..platform.apidoc import JSON
from ..platform.errors import not_found
from .document import DOCS_ASSETS, DOCUMENT_TITLE

bp = Blueprint("openapi", __name__, template_folder="templates")

SWAGGER_UI_DIR = Path(flask_swagger_ui.__file__).resolve().parent / "dist"


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """The OpenAPI 3.1 document, built at start-up (no auth). 200."""
    return current_app.response_class(current_app.extensions["todo_api.openapi"], mimetype=JSON)


@bp.get("/docs")
def docs() -> str:
    """A human-readable page of the OpenAPI document, with no asset from outside (no auth). 200."""
    return render_template("docs.html", title=DOCUMENT_TITLE)


@bp.get("/docs/<asset>")
def docs_asset(asset: str) -> Response:
    """A Swagger UI file the docs page loads, from the installed wheel. 200; 404."""
    if asset not in DOCS_ASSETS:
        raise not_found("No such file.")
    return send_from_directory(SWAGGER_UI_DIR, asset, mimetype=DOCS_ASSETS[asset], max_age=3600)
