"""manage.py mcp_server: the automation tools for AI agents over MCP on stdio, acting with one API token."""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandError

from tenants.services.tokens import authenticate_token


class Command(BaseCommand):
    help = "Serve the automation API as MCP tools on stdio, acting as the API token in QUETZAL_API_TOKEN."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--token-env", default="QUETZAL_API_TOKEN", help="The environment variable to read.")

    def handle(self, *args, **options) -> None:
        # Read from the environment, never the command line: arguments show in every process listing.
        raw = os.environ.get(options["token_env"], "")
        if authenticate_token(raw) is None:
            raise CommandError(f"Set {options['token_env']} to a valid Quetzal API token.")
        from desktops.mcp_server import build_server  # the mcp package loads only for this command

        build_server(raw).run("stdio")
