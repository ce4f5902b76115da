"""Who hears a controller's notices: the one subscribe/notify both controllers share, so the
local and the remote console are told of changes the same way."""

from __future__ import annotations

from collections.abc import Callable

from .interface import Notice


class Listeners:
    def __init__(self) -> None:
        self._callbacks: list[Callable[[Notice], None]] = []

    def subscribe(self, callback: Callable[[Notice], None]) -> Callable[[], None]:
        """Add ``callback``; the function returned removes it (again is harmless)."""
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

    def notify(self, notice: Notice) -> None:
        # A copy: a listener may unsubscribe while being told.
        for callback in tuple(self._callbacks):
            callback(notice)
