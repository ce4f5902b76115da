"""Textual's Footer, rebuilt only when the keys it shows changed.

Textual's Footer throws its keys away and composes them again whenever its screen says its
bindings may have changed, and a screen says so each time it is covered or uncovered: opening a
job's details and going back rebuilt both screens' footers (twenty-odd widgets mounted, styled
and laid out, tens of ms) to show the same keys again.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

KeysShown = tuple[object, ...]


class KeysFooter(Footer):
    _keys_composed: KeysShown | None = None  # what the keys on show were composed from

    def _keys_shown(self) -> KeysShown:
        """Everything Footer.compose reads: each active binding with whether it is enabled,
        its tooltip and the key as displayed (a keymap may rename it)."""
        app = self.app
        return (
            self.show_command_palette,
            app.ENABLE_COMMAND_PALETTE,
            app.COMMAND_PALETTE_BINDING,
            *(
                (key, active.binding, active.enabled, active.tooltip,
                 app.get_key_display(active.binding))
                for key, active in self.screen.active_bindings.items()
            ),
        )  # fmt: skip

    def compose(self) -> ComposeResult:
        if self._bindings_ready:
            self._keys_composed = self._keys_shown()
        yield from super().compose()

    def bindings_changed(self, screen: Screen) -> None:  # type: ignore[type-arg]
        if self._keys_composed is not None and self._keys_shown() == self._keys_composed:
            return
        super().bindings_changed(screen)
