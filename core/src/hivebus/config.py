"""Configuration: defaults < config file (TOML) < environment (``HIVEBUS_*``) < flags."""

from __future__ import annotations

import enum
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from hivebus_hookspecs.models import RetryPolicy
from pydantic import (
    AfterValidator,
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = [
    "DEFAULT_NATS_URL",
    "HivebusConfig",
    "OrchestratorMode",
    "RateLimit",
    "check_nats_url",
    "with_creds",
]

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
NATS_SCHEMES = ("nats", "tls", "ws", "wss")


def check_nats_url(urls: str) -> str:
    """``urls`` (comma-separated) if every one is a NATS URL; a wrong one is refused at once.

    Without this, ``http://host`` reached nats-py, which retried it until the connect timeout.
    """
    for url in (part.strip() for part in urls.split(",")):
        scheme, sep, rest = url.partition("://")
        if not sep:
            scheme, rest = "nats", url  # host:port, as nats-py accepts it
        if scheme.lower() not in NATS_SCHEMES:
            raise ValueError(
                f"{url!r} is not a NATS URL: use nats://HOST:PORT (or tls://, ws://, wss://)"
            )
        host = rest.rsplit("@", 1)[-1].split("/", 1)[0]
        if not host or host.startswith(":"):
            raise ValueError(f"{url!r} is not a NATS URL: it names no host")
    return urls


def _split_names(value: Any) -> Any:
    """Let lists come as ``a,b`` from the environment as well as real lists from TOML."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


NameList = Annotated[list[str], NoDecode, BeforeValidator(_split_names)]

_PERIODS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}


class RateLimit(NamedTuple):
    """At most ``count`` assignments in any ``period_s`` seconds."""

    count: int  # type: ignore[assignment]  # a field, not tuple.count
    period_s: float

    @classmethod
    def parse(cls, value: Any) -> Any:
        """``"10/m"``, ``"5/s"``, ``"100/h"`` (or ``[count, period_s]``)."""
        if not isinstance(value, str):
            return value
        count, _, unit = value.strip().partition("/")
        period = _PERIODS.get(unit.strip().lower())
        if not count.strip().isdigit() or period is None:
            raise ValueError(f"{value!r}: a rate is COUNT/UNIT with UNIT s, m or h, e.g. 10/m")
        return cls(int(count), period)

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "m", 3600.0: "h"}.get(self.period_s, f"{self.period_s}s")
        return f"{self.count}/{unit}"


def _check_rate(rate: RateLimit) -> RateLimit:
    if not 1 <= rate.count <= 1000 or rate.period_s <= 0:
        raise ValueError("a rate allows 1 to 1000 assignments per period")
    return rate


Rate = Annotated[RateLimit, BeforeValidator(RateLimit.parse), AfterValidator(_check_rate)]


class OrchestratorMode(enum.StrEnum):
    PRODUCTION = "production"
    DEVELOPMENT = "development"
    TESTING = "testing"
    SANDBOX = "sandbox"


class HivebusConfig(BaseSettings):
    """Everything the core, the SDK and the CLI can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="HIVEBUS_",
        # HIVEBUS_PLUGIN_CONFIG__PERFORMANCE__PORT=9465 sets one plugin setting, merged with
        # the file's table: what a container or a second replica on one host needs.
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        frozen=True,
    )

    # --- identity and bus ---
    orchestrator_id: str = Field(
        default_factory=lambda: f"hivebus-{uuid.uuid4().hex[:8]}", pattern=r"^[A-Za-z0-9_-]{1,64}$"
    )
    """Names this replica; also its own queue group for heartbeats."""
    mode: OrchestratorMode = OrchestratorMode.PRODUCTION
    nats_url: str | None = None
    """Join this NATS server; ``None`` runs the bundled nats-server (``hivebus up`` only)."""
    prefix: str = Field(default="", pattern=r"^([A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)?$")

    # --- embedded server ---
    host: str = "127.0.0.1"
    port: int = Field(default=4222, ge=0, le=65535)
    data_dir: Path = Path(".hivebus")

    # --- NATS connection (production options) ---
    user: str | None = None
    password: SecretStr | None = None
    """Shown as ``**********`` in every repr, log and validation error."""
    token: SecretStr | None = None
    nkeys_seed: Path | None = None
    creds_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("creds_file", "HIVEBUS_CREDS", "HIVEBUS_CREDS_FILE"),
    )
    """A credentials file: one ``hivebus auth add`` wrote (nkey seed, inbox prefix, CA) or a
    NATS JWT ``.creds`` file. Also ``HIVEBUS_CREDS``."""
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    connect_timeout_s: float = Field(default=2.0, gt=0)
    reconnect_wait_s: float = Field(default=1.0, gt=0)
    max_reconnect_attempts: int = -1
    request_timeout_s: float = Field(default=5.0, gt=0)

    # --- secure mode (docs/security.md) ---
    auth_dir: Path | None = None
    """An auth directory (``hivebus auth init``): the core authorizes every request from the
    identity the NATS server stamps on it, and audits. ``None``: open mode."""
    principal_rate_limits: dict[str, float] = Field(
        default_factory=lambda: {"agent": 100.0, "client": 100.0, "monitor": 50.0, "admin": 200.0}
    )
    """Requests per second each principal of a kind may send to one core (a token bucket);
    0: no limit."""
    principal_burst_s: float = Field(default=2.0, gt=0)
    """A principal may send this many seconds' worth of its rate at once."""
    max_live_tasks_per_principal: int = Field(default=1000, ge=1)
    """How many queued or running tasks one delegator may have; past it, ``rate_limited``."""
    nats_server_log: Path | None = None
    """The log of the nats-server of a secure bus: the refusals it makes itself (permissions,
    authentication) are read from it into the audit. ``hivebus up --auth`` sets it."""
    audit_retention_s: float = Field(default=30 * 86400.0, gt=0)
    """How long the audit stream keeps records (JetStream state)."""

    # --- state ---
    state: Literal["auto", "memory", "jetstream"] = "auto"
    """Where agents and tasks live: JetStream buckets (durable, shared by replicas) or this
    process's memory. ``auto`` uses JetStream when the server has it."""
    kv_replicas: int = Field(default=1, ge=1, le=5)
    """Replicas of the JetStream buckets (3 on a 3-node cluster)."""
    kv_storage: Literal["file", "memory"] = "file"

    # --- scheduling and limits ---
    max_agents: int = Field(default=100, ge=1)
    max_concurrent_tasks: int = Field(default=1000, ge=1)
    max_payload_bytes: int = Field(default=512 * 1024, ge=1024)
    """The largest request body the core reads; larger is ``payload_too_large`` unread."""
    max_inflight_requests: int = Field(default=1024, ge=1)
    """Requests this core handles at once; beyond, ``unavailable`` at once, unread."""
    max_inflight_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Bytes of the request bodies this core handles at once; beyond, ``unavailable``."""
    max_metadata_bytes: int = Field(default=16 * 1024, ge=0)
    """The largest ``metadata`` object (as JSON) an agent or a task may carry."""
    max_live_task_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Budget of the tasks queued or running, by weight (their records' JSON bytes plus 64 per
    JSON value): past it, ``task.delegate`` answers ``over_capacity``. It bounds the memory
    that clients can make the core hold, whatever the shape of their payloads."""
    task_retention_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    """Budget of the finished tasks kept for ``task.get``, by weight (oldest forgotten first)."""
    max_tasks_per_agent: int = Field(default=100, ge=1, le=10_000)
    """The largest ``max_tasks`` an agent may register with."""
    default_execution_timeout_s: float | None = Field(default=3600.0, gt=0)
    """The execution timeout of a task delegated without one (``None``: no default)."""
    agent_retention_s: float = Field(default=3600.0, ge=0)
    """How long the record of an agent gone offline is kept (visible in views) before it is
    deleted; the oldest go first when more than ``max_agents`` offline records pile up."""
    refusal_backoff_s: float = Field(default=1.0, gt=0)
    """A waiting task that agents refused (or let time out) is not offered again for this
    long, doubling with each refusal up to ``refusal_backoff_max_s``: other waiting tasks are
    offered meanwhile."""
    refusal_backoff_max_s: float = Field(default=30.0, gt=0)
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    offline_after_missed: int = Field(default=3, ge=1)
    offer_timeout_s: float = Field(default=1.0, gt=0)
    """How long an agent has to answer an offer; ``offer_candidates`` of these fit in the
    client's ``request_timeout_s``."""
    offer_candidates: int = Field(default=3, ge=1)
    max_attempts: int = Field(default=5, ge=1, le=50)
    """Without a retry policy: how often a task may be taken back from an agent that left or
    ran past its execution timeout before it is ``dead``."""
    retry: RetryPolicy | None = None
    """The retry policy of tasks that bring none and whose type has none in ``retry_by_type``;
    ``None``: a reported failure is final (see subjects.md, Retries)."""
    retry_by_type: dict[str, RetryPolicy] = Field(default_factory=dict)
    """Retry policies by task type, e.g. ``[retry_by_type.deploy] max_attempts = 5``."""
    rate_limits: dict[str, Rate] = Field(default_factory=dict)
    """Assignments per task type, across every replica: ``rate_limits = {deploy = "10/m"}``."""
    tenant_weights: dict[str, Annotated[float, Field(gt=0, le=1000)]] = Field(default_factory=dict)
    """Within a priority, a tenant with weight 2 is offered two tasks for another's one."""
    on_execution_timeout: Literal["requeue", "fail"] = "requeue"
    """What happens to a task past its ``execution_timeout_s``."""
    task_retention: int = Field(default=10_000, ge=0)
    """How many finished tasks stay queryable with ``task.get`` (oldest forgotten first)."""
    shutdown_grace_s: float = Field(default=5.0, ge=0)

    # --- health thresholds ---
    max_error_rate_percent: float = Field(default=5.0, ge=0)
    max_memory_mb: float = Field(default=512.0, gt=0)

    # --- plugins ---
    plugin_autoload: bool = True
    plugins: NameList | None = None
    """Load only these entry-point plugins (``None``: all installed)."""
    disable_plugins: NameList = Field(default_factory=list)
    enable_plugins: NameList = Field(default_factory=list)
    """Load these even when autoload is off, not in ``plugins``, or disabled (``-p NAME``)."""
    plugin_timeout_s: float = Field(default=2.0, gt=0)
    trace_plugins: bool = False
    """Log every hook call with its plugin, duration and outcome (``HIVEBUS_TRACE_PLUGINS=1``)."""
    plugin_config: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per-plugin settings, e.g. ``[plugin_config.audit] max_files = 50``."""

    # --- logging ---
    log_level: str = "INFO"
    log_format: str = Field(default="text", pattern="^(text|json)$")

    @field_validator("nats_url")
    @classmethod
    def _nats_url(cls, value: str | None) -> str | None:
        return None if value is None else check_nats_url(value)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @classmethod
    def load(cls, config_file: Path | str | None = None, **flags: Any) -> HivebusConfig:
        """Build the configuration; ``flags`` set to ``None`` are treated as not given."""
        given = {key: value for key, value in flags.items() if value is not None}
        if config_file is None:
            return cls(**given)
        path = Path(config_file)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        with_file = type(
            cls.__name__, (cls,), {"model_config": {**cls.model_config, "toml_file": path}}
        )
        return with_file(**given)  # type: ignore[no-any-return]

    def plugin_settings(self, name: str) -> dict[str, Any]:
        return self.plugin_config.get(name, {})


def with_creds(config: HivebusConfig, creds: str | Path | None) -> HivebusConfig:
    """``config`` connecting with the credentials file ``creds`` (``creds=`` of the SDK)."""
    if creds is None:
        return config
    return config.model_copy(update={"creds_file": Path(creds)})
