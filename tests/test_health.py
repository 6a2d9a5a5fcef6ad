"""The probes: /healthz needs nothing, /readyz needs the database; neither needs a token."""


def test_healthz_answers_200_in_the_envelope(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["data"] == {"status": "ok"}
    assert response.json["meta"]["request_id"] == response.headers["X-Request-ID"]


def test_readyz_answers_200_when_the_database_is_reachable(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["data"]["database"] == "ok"
