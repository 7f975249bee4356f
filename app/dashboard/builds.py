"""Build pages: each build's merged PRs, stages, artifacts and scores, and scores across
builds."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
