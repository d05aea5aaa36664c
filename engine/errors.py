"""The distinct ways a request to the engine can be refused (拒绝原因).

Each kind is its own class so that callers map them precisely (the web layer: 404, 403,
409, 409, 422, 422). A refusal always leaves the database as it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class EngineError(Exception):
    """Base of every refusal. ``code`` is stable and machine-readable."""

    code = "engine_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def as_dict(self) -> dict:
        return {"error": self.code, "message": self.message}


class DefinitionError(EngineError):
    """A workflow definition is malformed; ``faults`` names each fault with its place."""

    code = "definition_invalid"

    def __init__(self, faults: Sequence[str]) -> None:
        super().__init__("; ".join(faults))
        self.faults = list(faults)


class NotFound(EngineError):
    """No such object, or it lies outside the actor's org scope (the two are not told apart)."""

    code = "not_found"


class Forbidden(EngineError):
    """The actor can see the object but holds no role that may do this."""

    code = "forbidden"


class NotPossible(EngineError):
    """The action does not exist from the current state (or the instance is suspended/ended)."""

    code = "not_possible"


class Conflict(EngineError):
    """The caller's ``expected_version`` is stale: someone else changed the instance first."""

    code = "conflict"

    def __init__(self, message: str, current_version: int | None = None) -> None:
        super().__init__(message)
        self.current_version = current_version

    def as_dict(self) -> dict:
        return {**super().as_dict(), "current_version": self.current_version}


class GuardFailed(EngineError):
    """One or more conditions do not hold; ``reasons`` lists every one of them."""

    code = "guard_failed"

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = list(reasons)

    def as_dict(self) -> dict:
        return {**super().as_dict(), "reasons": self.reasons}


class InvalidForm(EngineError):
    """Submitted fields are wrong; ``errors`` maps each field name to what is wrong with it."""

    code = "invalid_form"

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)

    def as_dict(self) -> dict:
        return {**super().as_dict(), "fields": self.errors}
