"""The shared HTTP layer: a base API client, a pure retry policy, per-credential rate limiting and
redaction of secrets in anything that is logged or stored."""

from mlconnector.http.client import ApiClient, RequestEvent
from mlconnector.http.ratelimit import RateLimiter, RateLimiterRegistry
from mlconnector.http.redact import Redactor
from mlconnector.http.retry import RetryPolicy

__all__ = [
    "ApiClient",
    "RateLimiter",
    "RateLimiterRegistry",
    "Redactor",
    "RequestEvent",
    "RetryPolicy",
]
