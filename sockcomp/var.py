"""``Var``: the Python stand-in for a Pascal ``var`` parameter."""
from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["Var"]


class Var(Generic[T]):
    """A mutable cell passed to event handlers where Delphi passes a ``var`` parameter.

    One cell is handed to every connected handler in connection order, so a later handler sees
    what an earlier one wrote. A handler changes the outcome by assigning ``.value``::

        def on_error(sender, socket, error_event, error_code):
            error_code.value = 0          # Delphi: ErrorCode := 0;
    """

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Var({self.value!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Var):
            return bool(self.value == other.value)
        return bool(self.value == other)

    __hash__ = None  # type: ignore[assignment]
