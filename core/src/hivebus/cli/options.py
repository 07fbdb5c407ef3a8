"""The options several commands share, with their help text written once."""

from __future__ import annotations

import argparse

from . import arguments

__all__ = ["json_option", "nats_options"]


def nats_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nats",
        metavar="URL",
        type=arguments.nats_url,
        default=None,
        help="NATS URL, comma-separated for a cluster "
        "(default: $HIVEBUS_NATS_URL or nats://127.0.0.1:4222)",
    )
    parser.add_argument(
        "--config", metavar="FILE", default=None, help="TOML configuration file to read"
    )
    parser.add_argument(
        "--creds",
        metavar="FILE",
        default=None,
        help="credentials file for a secure bus (default: $HIVEBUS_CREDS)",
    )


def json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
