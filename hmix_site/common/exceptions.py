from typing import Any


class ApplicationError(Exception):
    """A request that is well-formed but breaks a rule of the study (finished session, ...).

    `status` lets the API answer 409 for state conflicts and 403 for ownership problems while
    keeping one exception type for the domain layer.
    """

    def __init__(self, message: str, extra: dict[str, Any] | None = None, *, status: int = 400):
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
        self.status = status
