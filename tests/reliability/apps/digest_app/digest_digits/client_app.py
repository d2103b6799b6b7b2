"""fixtures/message_app's ClientApp, as is."""

from message_digits.client_app import app

__all__ = ["app"]
