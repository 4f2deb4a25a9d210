"""One Settings class for the gateway: every knob is an ``ENCLAVE_*`` environment variable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ENCLAVE_", env_file=None, extra="ignore")

    # Where the appliance keeps its state (embedded Postgres, models, dev API key).
    var_dir: Path = Path("var")
    models_dir: Path | None = Field(default=None, description="The model store; default VAR_DIR/models.")
    database_url: str | None = Field(
        default=None, description="Postgres DSN; unset means the embedded server that `enclave up` starts."
    )
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    serve_host: str = "127.0.0.1"
    serve_port: int = 8700
    model_profile: str = "cpu-small"
    # Upstream (serving) base URL; defaults to the local Serve HTTP port.
    serving_url: str | None = None
    db_pool_min: int = 1
    db_pool_max: int = 10
    readiness_timeout_s: float = 2.0

    @property
    def model_store_dir(self) -> Path:
        return self.models_dir or self.var_dir / "models"

    @property
    def serving_base_url(self) -> str:
        return (self.serving_url or f"http://{self.serve_host}:{self.serve_port}").rstrip("/")


@lru_cache
def get_settings() -> Settings:
    return Settings()
