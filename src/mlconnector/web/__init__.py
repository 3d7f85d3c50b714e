"""The web layer: webhook receiver, operator UI, ``/healthz`` and ``/metrics``.

Build the app with :func:`create_web_app` (every dependency injected) and serve it with uvicorn
using :func:`server_config` (``access_log=False``: the webhook URL path carries a secret token).
"""

from mlconnector.web.app import close_web_app, create_web_app
from mlconnector.web.receiver import KeySource, ReceiverOptions, WebhookReceiver
from mlconnector.web.server import server_config

__all__ = [
    "KeySource",
    "ReceiverOptions",
    "WebhookReceiver",
    "close_web_app",
    "create_web_app",
    "server_config",
]
