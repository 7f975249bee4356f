"""The one Jinja2 environment every dashboard page renders with; modules add globals to it
(the signed-in viewer, the CSRF token) at import."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
