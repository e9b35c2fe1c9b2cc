"""Domain errors. The core raises these; `api.errors` maps them to HTTP in one place."""

from __future__ import annotations


class MedleyError(Exception):
    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(MedleyError):
    code = "not_found"


class InvalidInput(MedleyError):
    code = "invalid_input"


class UnsupportedMedia(MedleyError):
    code = "unsupported_media"


class PayloadTooLarge(MedleyError):
    code = "payload_too_large"


class StorageFull(MedleyError):
    code = "storage_full"


class Unavailable(MedleyError):
    code = "unavailable"


class Conflict(MedleyError):
    """The request clashes with the current state (a job already running, say)."""

    code = "conflict"


class BudgetExhausted(MedleyError):
    """A caller spent its allowance (the analytics privacy budget); it refills later."""

    code = "budget_exhausted"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
