"""Runtime configuration: every setting is an environment variable (DESIGN §6)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.sending_window import FRIENDTALK_HOURS, SendingWindow

SINCH_API_URLS = {
    "us": "https://us.conversation.api.sinch.com",
    "eu": "https://eu.conversation.api.sinch.com",
    "br": "https://br.conversation.api.sinch.com",
}
SINCH_AUTH_URL = "https://auth.sinch.com/oauth2/token"


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class Settings(BaseSettings):
    """All settings, read from the environment (names are the contract of DESIGN §6)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    redis_url: str = Field("redis://localhost:6379/0", validation_alias=_env("KAKAO_DISPATCH_REDIS_URL"))
    broker_url_override: str | None = Field(None, validation_alias=_env("KAKAO_DISPATCH_BROKER_URL"))
    sinch_project_id: str = Field("", validation_alias=_env("SINCH_PROJECT_ID"))
    sinch_app_id: str = Field("", validation_alias=_env("SINCH_APP_ID"))
    sinch_key_id: str = Field("", validation_alias=_env("SINCH_KEY_ID"))
    sinch_key_secret: SecretStr = Field(SecretStr(""), validation_alias=_env("SINCH_KEY_SECRET"))
    sinch_region: Literal["us", "eu", "br"] = Field("us", validation_alias=_env("SINCH_REGION"))
    sinch_api_url_override: str | None = Field(None, validation_alias=_env("SINCH_API_URL"))
    sinch_auth_url_override: str | None = Field(None, validation_alias=_env("SINCH_AUTH_URL"))
    sinch_webhook_secret: SecretStr | None = Field(None, validation_alias=_env("SINCH_WEBHOOK_SECRET"))
    api_keys_csv: SecretStr = Field(SecretStr(""), validation_alias=_env("KAKAO_DISPATCH_API_KEYS"))
    templates_path: Path | None = Field(None, validation_alias=_env("KAKAO_DISPATCH_TEMPLATES"))
    friendtalk_window_text: str = Field(FRIENDTALK_HOURS, validation_alias=_env("KAKAO_DISPATCH_FRIENDTALK_WINDOW"))
    rate_limit: float = Field(20.0, gt=0, validation_alias=_env("KAKAO_DISPATCH_RATE_LIMIT"))
    project_rate_limit: float = Field(800.0, gt=0, validation_alias=_env("KAKAO_DISPATCH_PROJECT_RATE_LIMIT"))
    sinch_auth_mode: Literal["oauth", "basic"] = Field("oauth", validation_alias=_env("SINCH_AUTH_MODE"))
    sinch_timeout: float = Field(10.0, gt=0, validation_alias=_env("KAKAO_DISPATCH_SINCH_TIMEOUT"))
    max_attempts: int = Field(8, ge=1, validation_alias=_env("KAKAO_DISPATCH_MAX_ATTEMPTS"))
    retry_base_seconds: float = Field(2.0, gt=0, validation_alias=_env("KAKAO_DISPATCH_RETRY_BASE_SECONDS"))
    retry_max_seconds: float = Field(600.0, gt=0, validation_alias=_env("KAKAO_DISPATCH_RETRY_MAX_SECONDS"))
    max_retry_after: float = Field(300.0, gt=0, validation_alias=_env("KAKAO_DISPATCH_MAX_RETRY_AFTER"))
    throttle_timeout: float = Field(86400.0, gt=0, validation_alias=_env("KAKAO_DISPATCH_THROTTLE_TIMEOUT"))
    unknown_timeout: float = Field(86400.0, gt=0, validation_alias=_env("KAKAO_DISPATCH_UNKNOWN_TIMEOUT"))
    task_time_limit: int = Field(120, ge=1, validation_alias=_env("KAKAO_DISPATCH_TASK_TIME_LIMIT"))
    stale_seconds: float = Field(300.0, gt=0, validation_alias=_env("KAKAO_DISPATCH_STALE_SECONDS"))
    max_requeues: int = Field(5, ge=0, validation_alias=_env("KAKAO_DISPATCH_MAX_REQUEUES"))
    visibility_timeout: int = Field(300, ge=5, validation_alias=_env("KAKAO_DISPATCH_VISIBILITY_TIMEOUT"))
    retention_days: float = Field(30.0, gt=0, validation_alias=_env("KAKAO_DISPATCH_RETENTION_DAYS"))
    release_queue_depth: int = Field(1000, ge=1, validation_alias=_env("KAKAO_DISPATCH_RELEASE_QUEUE_DEPTH"))
    media_probe: bool = Field(True, validation_alias=_env("KAKAO_DISPATCH_MEDIA_PROBE"))
    webhook_max_age_seconds: float = Field(300.0, gt=0, validation_alias=_env("KAKAO_DISPATCH_WEBHOOK_MAX_AGE"))
    webhook_max_body_bytes: int = Field(262144, ge=1024, validation_alias=_env("KAKAO_DISPATCH_WEBHOOK_MAX_BODY"))
    session_hours: float = Field(24.0, gt=0, validation_alias=_env("KAKAO_DISPATCH_SESSION_HOURS"))
    callback_secret: SecretStr | None = Field(None, validation_alias=_env("KAKAO_DISPATCH_CALLBACK_SECRET"))
    inbound_media_dir: Path | None = Field(None, validation_alias=_env("KAKAO_DISPATCH_INBOUND_MEDIA_DIR"))
    events_stream_length: int = Field(100000, ge=100, validation_alias=_env("KAKAO_DISPATCH_EVENTS_STREAM_LENGTH"))
    heartbeat_file: Path | None = Field(None, validation_alias=_env("KAKAO_DISPATCH_HEARTBEAT_FILE"))
    heartbeat_interval: float = Field(10.0, gt=0, validation_alias=_env("KAKAO_DISPATCH_HEARTBEAT_INTERVAL"))

    @field_validator("friendtalk_window_text")
    @classmethod
    def _valid_window(cls, value: str) -> str:
        SendingWindow.parse(value)
        return value

    @field_validator("stale_seconds")
    @classmethod
    def _stale_after_the_time_limit(cls, value: float, info: ValidationInfo) -> float:
        # A task may hold a `sending` job until Celery kills it at the time limit; the reconciler must judge the
        # job only after that, with room for clock skew between hosts, or it makes live sends `unknown`.
        limit = info.data.get("task_time_limit")
        if limit is not None and value < 2 * limit:
            raise ValueError(
                f"{value:g} s is too short: it must be at least twice KAKAO_DISPATCH_TASK_TIME_LIMIT ({limit} s)"
            )
        return value

    @field_validator("sinch_region", mode="before")
    @classmethod
    def _lower_region(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "templates_path",
        "broker_url_override",
        "sinch_api_url_override",
        "sinch_auth_url_override",
        "heartbeat_file",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def friendtalk_window(self) -> SendingWindow:
        """FriendTalk hours in Asia/Seoul (KAKAO_DISPATCH_FRIENDTALK_WINDOW, `HH:MM-HH:MM`)."""
        return SendingWindow.parse(self.friendtalk_window_text)

    @property
    def broker_url(self) -> str:
        return self.broker_url_override or self.redis_url

    @property
    def sinch_api_url(self) -> str:
        return (self.sinch_api_url_override or SINCH_API_URLS[self.sinch_region]).rstrip("/")

    @property
    def sinch_auth_url(self) -> str:
        return self.sinch_auth_url_override or SINCH_AUTH_URL

    @property
    def api_keys(self) -> tuple[str, ...]:
        """Bearer keys accepted by the HTTP API; empty means the API is open (for local use only)."""
        raw = self.api_keys_csv.get_secret_value()
        return tuple(key.strip() for key in raw.split(",") if key.strip())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
