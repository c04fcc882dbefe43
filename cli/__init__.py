"""The operator CLI (``python -m cli``): bulk work on service-account profiles from a terminal,
as a client of the HTTP API. See :mod:`cli.app` for the commands and :mod:`cli.client` for the
HTTP client."""
