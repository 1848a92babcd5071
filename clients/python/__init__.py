"""Python clients of bidhall: :class:`LiveClient` (websocket) and :class:`StaffClient` (HTTP)."""

from .staff import ApiError, StaffClient
from .ws import LiveClient

__all__ = ["ApiError", "LiveClient", "StaffClient"]
