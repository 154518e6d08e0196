"""BuzzWatch shared package: settings, the event schema, structured logging and the CLI."""

__version__ = "0.1.0"
