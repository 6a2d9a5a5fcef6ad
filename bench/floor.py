"""The floor: a bare Flask app answering a constant envelope. No Flask service can beat it here."""

from flask import Flask

app = Flask(__name__)
BODY = '{"data": {"status": "ok"}, "meta": {"request_id": "floor"}}'


@app.get("/floor")
def floor():
    return app.response_class(BODY, mimetype="application/json")
