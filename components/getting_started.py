"""The getting-started checklist of an empty install: each step ticked once it is done."""

from __future__ import annotations

from dataclasses import dataclass

from nicegui import ui


@dataclass(frozen=True)
class Step:
    """One step: what to do, where to do it, and whether it is done."""

    key: str
    title: str
    link: str
    done: bool


def getting_started(steps: list[Step]) -> ui.card | None:
    """The checklist card, or nothing once every step is done."""
    if all(s.done for s in steps):
        return None
    with ui.card().classes("w-full").mark("getting-started").props('data-testid="getting-started"') as card:
        ui.label("Getting started").classes("text-lg font-semibold")
        done = sum(s.done for s in steps)
        ui.label(f"{done} of {len(steps)} done: replicate your first tables in four steps.").classes("text-grey-7")
        for s in steps:
            with ui.row().classes("items-center gap-2"):
                if s.done:
                    ui.icon("check_circle", color="positive").mark(f"step-{s.key}-done")
                    ui.label(s.title).classes("line-through text-grey-7")
                else:
                    ui.icon("radio_button_unchecked", color="grey").mark(f"step-{s.key}-todo")
                    ui.link(s.title, s.link).classes("text-primary")
    return card
