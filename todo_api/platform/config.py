"""Environment → one frozen Settings object, validated once at start.

Every variable of OPERATIONS.md is read here and nowhere else. A bad value raises ConfigError
naming the variable; the entry points print that one line and exit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
ASYMMETRIC_ALGORITHMS = ("EdDSA", "ES256", "RS256", "PS256")
MIN_SECRET_BYTES = 32


class ConfigError(Exception):
    """A configuration value is missing or wrong; str() is the one line to show."""

    def __init__(self, variable: str, problem: str):
        super().__init__(f"configuration error: {variable} {problem}")
        self.variable = variable


# API.md §10: retried after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h.
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0)


@dataclass(frozen=True)
class WebhookSettings:
    """WEBHOOK_*: what the API checks a webhook's url against, and how `todo-api deliver` delivers."""

    timeout_seconds: float = 10.0
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    retention_days: int = 7
    allow_http: bool = False
    allow_private: bool = False
    concurrency: int = 8


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    better_auth_secret: str | None = None
    better_auth_url: str | None = None
    jwt_jwks_url: str | None = None
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_user_claim: str = "sub"
    jwt_leeway_seconds: int = 30
    db_pool_min_size: int = 1
    db_pool_max_size: int = 10
    db_pool_timeout: float = 5.0
    db_statement_timeout_ms: int = 5000
    db_prepared_statements: bool = True
    log_level: str = "INFO"
    log_format: str = "json"
    cors_allowed_origins: tuple[str, ...] = field(default_factory=tuple)
    sync_retention_days: int = 30
    request_head_timeout_seconds: float = 5.0
    request_body_timeout_seconds: float = 10.0
    metrics_enabled: bool = True
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    # JWKS cache tuning (see jwks.JwksCache); not read from the environment, tests shorten them.
    jwks_max_age_seconds: float = 300.0
    jwks_cooldown_seconds: float = 10.0
    jwks_timeout_seconds: float = 3.0

    @property
    def jwks_url(self) -> str | None:
        if self.jwt_jwks_url:
            return self.jwt_jwks_url
        if self.better_auth_url:
            return self.better_auth_url.rstrip("/") + "/api/auth/jwks"
        return None

    @property
    def hmac_algorithms(self) -> tuple[str, ...]:
        return tuple(a for a in self.jwt_algorithms if a in HMAC_ALGORITHMS)

    @property
    def asymmetric_algorithms(self) -> tuple[str, ...]:
        return tuple(a for a in self.jwt_algorithms if a in ASYMMETRIC_ALGORITHMS)


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _int(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be a whole number, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(name, f"must be between {minimum} and {maximum}, got {value}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, f"must be a number of seconds, got {raw!r}") from None
    if not 0 < value <= 600:
        raise ConfigError(name, f"must be more than 0 and at most 600 seconds, got {raw}")
    return value


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    value = _text(env, name)
    if value is not None and not value.startswith(tuple(s + "://" for s in schemes)):
        raise ConfigError(name, f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
    return value


def _boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (_text(env, name) or "").lower()
    if not raw:
        return default
    if raw not in ("true", "false", "1", "0", "on", "off"):
        raise ConfigError(name, f"must be true or false, got {raw!r}")
    return raw in ("true", "1", "on")


def _algorithms(env: Mapping[str, str], default: tuple[str, ...]) -> tuple[str, ...]:
    raw = _text(env, "JWT_ALGORITHMS")
    if raw is None:
        return default
    names = tuple(dict.fromkeys(a.strip() for a in raw.split(",") if a.strip()))
    known = HMAC_ALGORITHMS + ASYMMETRIC_ALGORITHMS
    unknown = [a for a in names if a not in known]
    if unknown or not names:
        raise ConfigError("JWT_ALGORITHMS", f"must list algorithms from {', '.join(known)}, got {raw!r}")
    return names


def _is_origin(value: str) -> bool:
    """scheme://host[:port] and nothing else, as a browser sends it in Origin."""
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and "@" not in parts.netloc
        and not (parts.path or parts.query or parts.fragment)
    )


def _origins(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = _text(env, "CORS_ALLOWED_ORIGINS") or ""
    origins = tuple(dict.fromkeys(o.strip().rstrip("/") for o in raw.split(",") if o.strip()))
    for origin in origins:
        if origin != "*" and not _is_origin(origin):
            raise ConfigError(
                "CORS_ALLOWED_ORIGINS",
                f"must list origins like https://app.example.com or http://localhost:3000 (no path), got {origin!r}",
            )
    return origins


def database_url(env: Mapping[str, str] | None = None) -> str | None:
    """DATABASE_URL as libpq reads it, validated: one host or several, as `postgresql://u@h1:p1,h2:p2/db`
    or `postgresql://u@/db?host=h1,h2&port=p1,p2` (with `target_session_attrs=read-write` for a
    failover); None when unset. For commands that need no auth configuration too."""
    env = os.environ if env is None else env
    url = _url(env, "DATABASE_URL", ("postgresql", "postgres"))
    if url is None:
        return None
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as error:
        reason = _without_passwords(str(error).strip().splitlines()[0], url)
        raise ConfigError("DATABASE_URL", f"is not a URL libpq can read: {reason}") from None
    hosts = (params.get("host") or params.get("hostaddr") or "").split(",")
    ports = params["port"].split(",") if "port" in params else []
    for port in ports:
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ConfigError("DATABASE_URL", f"has a port that is not a number from 1 to 65535: {port!r}")
    if len(ports) > 1 and len(ports) != len(hosts):
        raise ConfigError("DATABASE_URL", f"names {len(hosts)} hosts but {len(ports)} ports (give one, or one each)")
    return url


def _without_passwords(message: str, url: str) -> str:
    """libpq's message, which may quote the URL, without the passwords the URL holds."""
    userinfo = url.partition("://")[2].split("/", 1)[0].rpartition("@")[0]
    for password in [userinfo.partition(":")[2], *re.findall(r"[?&]password=([^&#]*)", url)]:
        if password:
            message = message.replace(password, "***")
    return message


def statement_timeout_ms(env: Mapping[str, str] | None = None) -> int:
    """DB_STATEMENT_TIMEOUT_MS alone, validated: for commands that need no auth configuration."""
    return _int(os.environ if env is None else env, "DB_STATEMENT_TIMEOUT_MS", 5000, 1, 3_600_000)


def _retry_schedule(env: Mapping[str, str]) -> tuple[float, ...]:
    raw = _text(env, "WEBHOOK_RETRY_SCHEDULE")
    if raw is None:
        return DEFAULT_RETRY_SCHEDULE
    try:
        steps = tuple(float(step) for step in raw.split(","))
    except ValueError:
        steps = ()
    if not steps or not all(0 < step <= 86400 for step in steps):
        raise ConfigError(
            "WEBHOOK_RETRY_SCHEDULE",
            f"must be comma-separated seconds, each more than 0 and at most 86400, got {raw!r}",
        )
    return steps


def log_settings(env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """LOG_LEVEL and LOG_FORMAT alone, validated: for commands that need no auth configuration."""
    env = os.environ if env is None else env
    log_level = (_text(env, "LOG_LEVEL") or "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError("LOG_LEVEL", f"must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {log_level!r}")
    log_format = (_text(env, "LOG_FORMAT") or "json").lower()
    if log_format not in ("json", "text"):
        raise ConfigError("LOG_FORMAT", f"must be json or text, got {log_format!r}")
    return log_level, log_format


def webhook_settings(env: Mapping[str, str] | None = None) -> WebhookSettings:
    """WEBHOOK_* alone, validated: `todo-api deliver` needs no auth configuration."""
    env = os.environ if env is None else env
    return WebhookSettings(
        timeout_seconds=_seconds(env, "WEBHOOK_TIMEOUT_SECONDS", 10.0),
        retry_schedule=_retry_schedule(env),
        retention_days=_int(env, "WEBHOOK_RETENTION_DAYS", 7, 1, 3650),
        allow_http=_boolean(env, "WEBHOOK_ALLOW_HTTP", False),
        allow_private=_boolean(env, "WEBHOOK_ALLOW_PRIVATE", False),
        concurrency=_int(env, "WEBHOOK_CONCURRENCY", 8, 1, 256),
    )


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the environment; raise ConfigError on the first bad variable."""
    env = os.environ if env is None else env

    secret = env.get("BETTER_AUTH_SECRET") or None
    if secret is not None and len(secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigError("BETTER_AUTH_SECRET", f"must be at least {MIN_SECRET_BYTES} bytes long")
    auth_url = _url(env, "BETTER_AUTH_URL", ("http", "https"))
    jwks_url = _url(env, "JWT_JWKS_URL", ("http", "https"))
    if secret is None and auth_url is None and jwks_url is None:
        raise ConfigError("BETTER_AUTH_SECRET", "is required unless BETTER_AUTH_URL or JWT_JWKS_URL is set")

    default_algorithms = (("HS256",) if secret else ()) + (ASYMMETRIC_ALGORITHMS if auth_url or jwks_url else ())
    algorithms = _algorithms(env, default_algorithms)
    if secret is None and not any(a in ASYMMETRIC_ALGORITHMS for a in algorithms):
        raise ConfigError("JWT_ALGORITHMS", "lists only HMAC algorithms but BETTER_AUTH_SECRET is unset")
    if secret is not None and not (auth_url or jwks_url) and not any(a in HMAC_ALGORITHMS for a in algorithms):
        raise ConfigError("JWT_ALGORITHMS", "lists no HMAC algorithm but only BETTER_AUTH_SECRET is set")
    for algorithm, key_bytes in (("HS384", 48), ("HS512", 64)):  # RFC 7518 §3.2: a key as long as the hash
        if secret is not None and algorithm in algorithms and len(secret.encode()) < key_bytes:
            raise ConfigError("BETTER_AUTH_SECRET", f"must be at least {key_bytes} bytes long for {algorithm}")

    default_claim_source = auth_url.rstrip("/") if auth_url else None
    user_claim = _text(env, "JWT_USER_CLAIM") or "sub"

    min_size = _int(env, "DB_POOL_MIN_SIZE", 1, 0, 1000)
    max_size = _int(env, "DB_POOL_MAX_SIZE", 10, 1, 1000)
    if max_size < min_size:
        raise ConfigError("DB_POOL_MAX_SIZE", f"must be at least DB_POOL_MIN_SIZE ({min_size})")

    log_level, log_format = log_settings(env)

    origins = _origins(env)

    return Settings(
        database_url=database_url(env),
        better_auth_secret=secret,
        better_auth_url=auth_url,
        jwt_jwks_url=jwks_url,
        jwt_algorithms=algorithms,
        jwt_issuer=_text(env, "JWT_ISSUER") or default_claim_source,
        jwt_audience=_text(env, "JWT_AUDIENCE") or default_claim_source,
        jwt_user_claim=user_claim,
        jwt_leeway_seconds=_int(env, "JWT_LEEWAY_SECONDS", 30, 0, 3600),
        db_pool_min_size=min_size,
        db_pool_max_size=max_size,
        db_pool_timeout=_seconds(env, "DB_POOL_TIMEOUT", 5.0),
        db_statement_timeout_ms=statement_timeout_ms(env),
        db_prepared_statements=_boolean(env, "DB_PREPARED_STATEMENTS", True),
        log_level=log_level,
        log_format=log_format,
        cors_allowed_origins=origins,
        sync_retention_days=_int(env, "SYNC_RETENTION_DAYS", 30, 1, 36500),
        request_head_timeout_seconds=_seconds(env, "REQUEST_HEAD_TIMEOUT_SECONDS", 5.0),
        request_body_timeout_seconds=_seconds(env, "REQUEST_BODY_TIMEOUT_SECONDS", 10.0),
        metrics_enabled=_boolean(env, "METRICS_ENABLED", True),
        webhooks=webhook_settings(env),
    )
