"""Configuration from the environment (and `.env`), exactly as CONTRACT section 1 names it."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from portico import branding, i18n


def _read_or_create(path: Path, nbytes: int) -> str:
    """Return the secret stored at `path`, generating it once if the file does not exist."""
    made = read_or_create_bytes(path, lambda: (secrets.token_urlsafe(nbytes) + "\n").encode())
    return made.decode().strip()


def read_or_create_bytes(path: Path, make: Callable[[], bytes]) -> bytes:
    """Return the file at `path`, writing `make()` there (mode 0600) once if it does not exist.

    Web and worker share `var/` (docs/operations.md) and may both start on an empty volume: the
    file appears atomically, complete, and whoever comes second reads the first one's value."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    draft.write_bytes(make())
    draft.chmod(0o600)
    try:
        os.link(draft, path)  # fails if the file exists: never replaces a secret in use
    except FileExistsError:
        pass
    except OSError:  # a filesystem without hard links
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(draft.read_bytes())
    finally:
        draft.unlink(missing_ok=True)
    return path.read_bytes()


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Settings(BaseSettings):
    """Every knob Portico reads; unset secrets are generated once under `var/`."""

    # env_ignore_empty: `VAR=` (as docker-compose passes `${VAR:-}`) means unset, not "".
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", populate_by_name=True, env_ignore_empty=True
    )

    database_url: str = Field("sqlite+aiosqlite:///./var/portico.db", alias="PORTICO_DATABASE_URL")
    # Connections each process opens as its load needs them and keeps (docs/operations.md).
    db_pool_size: int = Field(15, ge=1, le=200, alias="PORTICO_DB_POOL_SIZE")
    public_url: str = Field("http://127.0.0.1:8080", alias="PORTICO_PUBLIC_URL")
    http_host: str = Field("127.0.0.1", alias="PORTICO_HTTP_HOST")
    http_port: int = Field(8080, alias="PORTICO_HTTP_PORT")
    # `portico web` processes sharing the port, one core each (web/serve.py).
    web_processes: int = Field(1, ge=1, le=64, alias="PORTICO_WEB_PROCESSES")
    secret_key_value: str | None = Field(None, alias="PORTICO_SECRET_KEY")
    staff_api_key_value: str | None = Field(None, alias="PORTICO_STAFF_API_KEY")
    files_dir: Path = Field(Path("./var/files"), alias="PORTICO_FILES_DIR")
    var_dir: Path = Field(Path("./var"), alias="PORTICO_VAR_DIR")

    temporal_address: str | None = Field(None, alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field("default", alias="TEMPORAL_NAMESPACE")
    task_queue: str = Field("portico", alias="PORTICO_TASK_QUEUE")

    smtp_host: str | None = Field(None, alias="PORTICO_SMTP_HOST")
    smtp_port: int | None = Field(None, alias="PORTICO_SMTP_PORT")
    smtp_username: str | None = Field(None, alias="PORTICO_SMTP_USERNAME")
    smtp_password: str | None = Field(None, alias="PORTICO_SMTP_PASSWORD")
    smtp_starttls: bool = Field(False, alias="PORTICO_SMTP_STARTTLS")
    mail_from: str = Field("Portico <no-reply@localhost>", alias="PORTICO_MAIL_FROM")
    # Set by `portico dev` when the "relay" is its own embedded SMTP sink: the dev outbox then
    # keeps messages with their links, as with no relay at all (docs/operations.md).
    smtp_dev_sink: bool = Field(False, alias="PORTICO_SMTP_DEV_SINK")

    twilio_account_sid: str | None = Field(None, alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: str | None = Field(None, alias="TWILIO_AUTH_TOKEN")
    twilio_from_number: str | None = Field(None, alias="TWILIO_FROM_NUMBER")
    twilio_messaging_service_sid: str | None = Field(None, alias="TWILIO_MESSAGING_SERVICE_SID")
    twilio_api_base: str | None = Field(None, alias="PORTICO_TWILIO_API_BASE")

    stripe_secret_key: str | None = Field(None, alias="STRIPE_SECRET_KEY")
    stripe_webhook_secret: str | None = Field(None, alias="STRIPE_WEBHOOK_SECRET")
    stripe_api_base: str | None = Field(None, alias="PORTICO_STRIPE_API_BASE")
    # Shown on an invoice's page when Stripe is not configured (docs/portal.md).
    bank_details: str = Field("", alias="PORTICO_BANK_DETAILS")

    staff_phones_value: str = Field("", alias="PORTICO_STAFF_PHONES")
    staff_emails_value: str = Field("", alias="PORTICO_STAFF_EMAILS")
    # SMS etiquette: non-urgent texts (reminders, expiry warnings) wait out the recipient's
    # night ("21-8" = 21:00 to 08:00 local; "off" disables); the zone comes from the number's
    # country code, else this default. Outbound SMS are throttled per task queue.
    quiet_hours: str = Field("21-8", alias="PORTICO_QUIET_HOURS")
    # Texts held overnight go out over this many minutes after the night ends, each at its own
    # stable moment, not all at once (0: all at the end of the night).
    quiet_hours_spread_minutes: int = Field(
        30, ge=0, le=240, alias="PORTICO_QUIET_HOURS_SPREAD_MINUTES"
    )
    default_timezone: str = Field("America/New_York", alias="PORTICO_DEFAULT_TIMEZONE")
    # The language of a client (or approver) with no `locale` of their own (CONTRACT section 10).
    default_locale: str = Field("en", alias="PORTICO_DEFAULT_LOCALE")
    sms_per_second: float = Field(1.0, alias="PORTICO_SMS_PER_SECOND")

    company_name: str = Field("Portico", alias="PORTICO_COMPANY_NAME")
    # Service agreements (docs/agreements.md): each visit is booked this many days before it.
    agreement_book_ahead_days: int = Field(
        14, ge=0, le=365, alias="PORTICO_AGREEMENT_BOOK_AHEAD_DAYS"
    )
    # The signed PDF's digital signature (docs/signing.md): the business's certificate as a
    # PKCS#12 file, else a self-signed one made once into var/signing.p12; an RFC 3161
    # timestamp authority makes it PAdES B-T.
    signing_cert: Path | None = Field(None, alias="PORTICO_SIGNING_CERT")
    signing_cert_password: str | None = Field(None, alias="PORTICO_SIGNING_CERT_PASSWORD")
    tsa_url: str | None = Field(None, alias="PORTICO_TSA_URL")
    # Branding of the signing pages and emails (docs/signing.md).
    logo_url: str | None = Field(None, alias="PORTICO_LOGO_URL")
    accent_color: str | None = Field(None, alias="PORTICO_ACCENT_COLOR")
    division_logos_value: str = Field("", alias="PORTICO_DIVISION_LOGOS")
    max_upload_bytes: int = Field(20 * 1024 * 1024, alias="PORTICO_MAX_UPLOAD_BYTES")
    # Untrusted PDFs (uploads, signed copies returned by clients) are checked in a child process
    # within these limits and refused beyond them (docs/operations.md, "PDF limits").
    pdf_max_pages: int = Field(500, ge=1, alias="PORTICO_PDF_MAX_PAGES")
    pdf_max_objects: int = Field(100_000, ge=100, alias="PORTICO_PDF_MAX_OBJECTS")
    pdf_max_decompressed_bytes: int = Field(
        50 * 1024 * 1024, ge=1024 * 1024, alias="PORTICO_PDF_MAX_DECOMPRESSED_BYTES"
    )
    pdf_timeout_seconds: float = Field(30.0, gt=0, le=600, alias="PORTICO_PDF_TIMEOUT_SECONDS")

    # Operations (docs/operations.md): payload encryption, codec endpoint, worker metrics.
    payload_key: str | None = Field(None, alias="PORTICO_PAYLOAD_KEY")
    payload_keys_old_value: str = Field("", alias="PORTICO_PAYLOAD_KEYS_OLD")
    codec_cors_origin: str | None = Field(None, alias="PORTICO_CODEC_CORS_ORIGIN")
    worker_metrics_address: str | None = Field(None, alias="PORTICO_WORKER_METRICS_ADDRESS")
    # Workflows the worker keeps in memory (~0.15-0.2 MiB each); evicted ones are replayed
    # from history when they next wake up, cheap since a request's history is short (11 events
    # once sent; docs/benchmarks.md, section 4, fifth pass: 600 keeps a worker under 300 MiB
    # with 10 000 open requests, at ~10 % of the reminder burst).
    worker_cache_size: int = Field(600, ge=100, alias="PORTICO_WORKER_CACHE_SIZE")
    # How the worker's sandbox loads Portico's workflow modules (worker.py, `workflow_runner`):
    # `strict` imports them afresh for every workflow run, so the sandbox checks each call of
    # workflow code (for development and the tests); `shared` loads them once for all runs,
    # a fifth to a quarter less memory per cached workflow (docker-compose.yml; docs/operations.md,
    # "Worker memory").
    worker_sandbox: Literal["strict", "shared"] = Field("strict", alias="PORTICO_WORKER_SANDBOX")
    # How long a workflow task waits on a worker's sticky queue before any worker may take it
    # (the SDK's default is 10 s): after a worker dies, the next decision on each of its cached
    # workflows waits this long (docs/operations.md, "When a worker dies").
    worker_sticky_timeout: float = Field(3.0, gt=0, le=60, alias="PORTICO_WORKER_STICKY_TIMEOUT")
    # The outbox (docs/operations.md): a message that fails is retried from this delay, doubling
    # up to the maximum, until it is given up after the window; the worker hands to Temporal
    # any message the web layer recorded but did not (it died first) once it is this old.
    outbox_retry_seconds: float = Field(5.0, gt=0, alias="PORTICO_OUTBOX_RETRY_SECONDS")
    outbox_retry_max_seconds: float = Field(600.0, gt=0, alias="PORTICO_OUTBOX_RETRY_MAX_SECONDS")
    outbox_give_up_hours: float = Field(72.0, gt=0, alias="PORTICO_OUTBOX_GIVE_UP_HOURS")
    outbox_sweep_seconds: float = Field(5.0, gt=0, alias="PORTICO_OUTBOX_SWEEP_SECONDS")
    # Outbound webhooks (CONTRACT section 11, docs/integrations.md): receivers on loopback,
    # link-local or private addresses are refused unless allowed (local development, tests);
    # a failed delivery is retried from this delay, doubling up to the maximum, for the window.
    webhooks_allow_private: bool = Field(False, alias="PORTICO_WEBHOOKS_ALLOW_PRIVATE")
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, le=60, alias="PORTICO_WEBHOOK_TIMEOUT_SECONDS"
    )
    webhook_retry_seconds: float = Field(5.0, gt=0, alias="PORTICO_WEBHOOK_RETRY_SECONDS")
    webhook_retry_max_seconds: float = Field(
        3600.0, gt=0, alias="PORTICO_WEBHOOK_RETRY_MAX_SECONDS"
    )
    webhook_give_up_hours: float = Field(72.0, gt=0, alias="PORTICO_WEBHOOK_GIVE_UP_HOURS")

    @cached_property
    def secret_key(self) -> str:
        return self.secret_key_value or _read_or_create(self.var_dir / "secret.key", 32)

    @cached_property
    def staff_api_key(self) -> str:
        return self.staff_api_key_value or _read_or_create(self.var_dir / "staff-api.key", 24)

    @property
    def staff_phones(self) -> list[str]:
        return _split(self.staff_phones_value)

    @property
    def staff_emails(self) -> list[str]:
        return _split(self.staff_emails_value)

    @field_validator("default_locale")
    @classmethod
    def _default_locale(cls, value: str) -> str:
        code = i18n.normalize(value)
        if code is None:
            raise ValueError(f"PORTICO_DEFAULT_LOCALE must be one of {', '.join(i18n.LOCALES)}")
        return code

    @field_validator("default_timezone")
    @classmethod
    def _default_timezone(cls, value: str) -> str:
        if not i18n.valid_timezone(value):
            raise ValueError("PORTICO_DEFAULT_TIMEZONE must be an IANA zone, like America/Toronto")
        return value

    @field_validator("logo_url")
    @classmethod
    def _logo_url(cls, value: str | None) -> str | None:
        return branding.check_logo_url(value) if value else None

    @field_validator("accent_color")
    @classmethod
    def _accent_color(cls, value: str | None) -> str | None:
        return branding.normalize_hex(value) if value else None

    @field_validator("signing_cert", "signing_cert_password", "tsa_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("tsa_url")
    @classmethod
    def _tsa_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("PORTICO_TSA_URL must be an http(s) URL")
        return value

    @field_validator("division_logos_value")
    @classmethod
    def _division_logos(cls, value: str) -> str:
        branding.parse_division_logos(value)  # refuse a malformed list at start-up
        return value

    @property
    def division_logos(self) -> dict[str, str]:
        """{division (casefolded): logo URL} from PORTICO_DIVISION_LOGOS."""
        return branding.parse_division_logos(self.division_logos_value)

    @property
    def payload_keys_old(self) -> list[str]:
        """Retired payload keys, still accepted for decrypting (comma-separated base64)."""
        return _split(self.payload_keys_old_value)

    @property
    def sms_task_queue(self) -> str:
        """The rate-limited task queue the `send_sms` activity runs on."""
        return f"{self.task_queue}-sms"

    @property
    def webhook_task_queue(self) -> str:
        """The task queue webhook deliveries run on, so a slow receiver never holds up the
        activities of approvals and invoices."""
        return f"{self.task_queue}-webhooks"

    @property
    def twilio_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def stripe_enabled(self) -> bool:
        return bool(self.stripe_secret_key)

    def url(self, path: str) -> str:
        """An absolute URL under PORTICO_PUBLIC_URL."""
        return self.public_url.rstrip("/") + "/" + path.lstrip("/")


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; keyword overrides use the field names."""
    settings = Settings()
    return settings.model_copy(update=overrides) if overrides else settings
