"""The controller's change notices as Textual messages, so the screen redraws from its own
message queue, never from inside the engine's event publishing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.message import Message

from ..control import controller
from ..control.controller import Notice


class JobsChanged(Message):
    """Some jobs changed. Only the latest of a burst is handled: the redraw reads every view
    anew, so the earlier ones would draw the same screen again."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, JobsChanged)


class RunFailed(Message):
    def __init__(self, job_id: str, error: str) -> None:
        super().__init__()
        self.job_id = job_id
        self.error = error


class HookFailed(Message):
    def __init__(self, job_id: str, error: str) -> None:
        super().__init__()
        self.job_id = job_id
        self.error = error


class ReloadFinished(Message):
    def __init__(self, ok: bool, problems: tuple[str, ...]) -> None:
        super().__init__()
        self.ok = ok
        self.problems = problems


class ActionFailed(Message):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message


_FROM_NOTICE: dict[type, Callable[[Any], Message]] = {
    controller.JobsChanged: lambda notice: JobsChanged(),
    controller.RunFailed: lambda notice: RunFailed(notice.job_id, notice.message),
    controller.HookFailed: lambda notice: HookFailed(notice.job_id, notice.message),
    controller.ReloadFinished: lambda notice: ReloadFinished(notice.ok, notice.problems),
    controller.ActionFailed: lambda notice: ActionFailed(notice.message),
}


def message_for(notice: Notice) -> Message:
    return _FROM_NOTICE[type(notice)](notice)
