"""``hivebus up``: the core, joining a NATS server or starting the bundled one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..auth.serving import is_loopback, secure_setup
from ..config import HivebusConfig
from ..connection import redact
from ..heap import release_free_heap
from ..knock import Answer, knock
from ..logs import configure_logging
from ..runtime import Core
from ..server import EmbeddedServer
from .failures import CommandFailed
from .shutdown import first_of, stop_requested

__all__ = ["up"]


def _load(args: argparse.Namespace) -> HivebusConfig:
    flags = {
        "nats_url": args.nats,
        "port": args.port,
        "data_dir": Path(args.data_dir) if args.data_dir else None,
        "log_level": args.log_level,
        "creds_file": args.creds,
        "auth_dir": Path(args.auth) if args.auth else None,
    }
    config = HivebusConfig.load(args.config, **flags)
    if not args.plugin_flags:
        return config
    enable = [name for name in args.plugin_flags if not name.startswith("no:")]
    disable = [name.removeprefix("no:") for name in args.plugin_flags if name.startswith("no:")]
    return HivebusConfig.load(
        args.config,
        **flags,
        enable_plugins=[*config.enable_plugins, *enable],
        disable_plugins=[*config.disable_plugins, *disable],
    )


async def up(args: argparse.Namespace) -> int:
    config = _load(args)
    configure_logging(config.log_level, config.log_format)
    extra_args: tuple[str, ...] = ()
    if config.auth_dir is not None:
        try:
            config, extra_args = secure_setup(config)
        except ValueError as exc:
            print(f"hivebus: {exc}", file=sys.stderr)
            return 2
    elif config.nats_url is None and not is_loopback(config.host):
        print(
            f"hivebus: WARNING: an open bus (no --auth) listens on {config.host}: anyone who "
            "reaches it can register, delegate, complete and read everything. Run "
            "`hivebus auth init` and `hivebus up --auth DIR` (docs/security.md).",
            file=sys.stderr,
            flush=True,
        )
    stop = stop_requested()  # first: a Ctrl-C during start-up still stops cleanly
    server: EmbeddedServer | None = None
    if config.nats_url is None:
        url = f"nats://{config.host}:{config.port}"
        there = await knock(config.host, config.port)
        if there.answer is Answer.NATS:
            print(
                f"hivebus: a NATS server already listens on {url} (another hivebus up?): "
                "joining it as a replica",
                flush=True,
            )
        elif there.answer is not Answer.NOBODY:
            raise CommandFailed(
                f"port {config.port} on {config.host} is in use and not by NATS "
                f"({there.reason}): choose another with --port, or join a server with --nats"
            )
        else:
            server = EmbeddedServer(
                config.host, config.port, config.data_dir, extra_args=extra_args
            )
            await server.start_async()
            secure = f", secure: {config.auth_dir}" if config.auth_dir else ""
            print(
                f"hivebus: embedded nats-server with JetStream on {server.url} "
                f"(data in {config.data_dir}{secure})",
                flush=True,
            )
            url = server.url
            if config.auth_dir is not None and config.nats_server_log is None:
                config = config.model_copy(update={"nats_server_log": server.log_path})
        config = config.model_copy(update={"nats_url": url})
    try:
        core = Core(config)
        await core.start()
        # Start-up's leftovers (import-time compilation, validator building) are free heap
        # from here on: a long-running core should not carry them in its RSS.
        release_free_heap()
        plugins = ", ".join(core.plugins.names()) or "none"
        print(
            f"hivebus: core {config.orchestrator_id} serving on {redact(config.nats_url or '')} "
            f"(plugins: {plugins}; event loop: {args.event_loop}); "
            "Ctrl-C to stop",
            flush=True,
        )
        await first_of(stop, core.lost)
        if core.lost.is_set():
            # Alive but deaf helps nobody: exit, so a supervisor restarts the core (state in
            # JetStream is where it was).
            print(
                "hivebus: the NATS connection closed for good; exiting so that a supervisor "
                "can restart the core",
                file=sys.stderr,
                flush=True,
            )
            await core.stop()
            return 3
        print("hivebus: stopping", flush=True)
        await core.stop()
    finally:
        if server is not None:
            server.stop()
    print("hivebus: stopped", flush=True)
    return 0
