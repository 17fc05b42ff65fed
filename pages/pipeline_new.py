"""The "New pipeline" wizard page (editors and admins)."""

from __future__ import annotations

from nicegui import ui

from components.frame import frame
from components.pipeline_wizard import PipelineWizard
from core.security import Action, can


async def pipeline_new_page() -> None:
    """Create a pipeline step by step."""
    async with frame("New pipeline") as actor:
        if not can(actor.role, Action.manage_pipelines):
            ui.label("You need the editor or admin role to create pipelines.").classes("text-negative").mark(
                "pipeline-new-denied"
            )
            return
        await PipelineWizard(actor).build()
