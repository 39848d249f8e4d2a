"""Domain errors. Each carries a message that names the field or object at fault.

The API and the CLI map these once, centrally: NotFound → 404, InvalidArgument → 400,
Conflict → 409, Unsupported → 422, PermissionDenied → 403, Unavailable → 503.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a caller can act on (as opposed to a bug)."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, str]:
        body = {"error": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        return body


class NotFound(DomainError):
    code = "not_found"

    @classmethod
    def of(cls, kind: str, ident: object) -> NotFound:
        return cls(f"{kind} {ident!s} not found")


class InvalidArgument(DomainError):
    code = "invalid_argument"


class Conflict(DomainError):
    code = "conflict"


class Unsupported(DomainError):
    """The provider behind the object cannot do what was asked."""

    code = "unsupported"


class PermissionDenied(DomainError):
    code = "permission_denied"


class AuthenticationFailed(DomainError):
    code = "authentication_failed"


class Unavailable(DomainError):
    """A service the core needs (its database) cannot be reached now; a later try may work."""

    code = "unavailable"


class ProviderError(DomainError):
    """A back end failed while doing something it supports; the job records it."""

    code = "provider_error"

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable
