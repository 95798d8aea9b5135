"""The ``rayflow`` command line: parse, call the service, format. No business logic."""
