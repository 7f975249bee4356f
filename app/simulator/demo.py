"""A small demo world for `labbot dev github --seed-demo`: an organization with a taxonomy
repository, triager and maintainer teams, and the App installed. Nothing is sent to labbot."""

from __future__ import annotations

from app.simulator.state import SimulatorState

DEMO_ORG = "instructlab-demo"
DEMO_REPO = "taxonomy"
DEMO_TRIAGERS = "taxonomy-triagers"
DEMO_MAINTAINERS = "taxonomy-maintainers"

_EXAMPLES = [
    ("What is 12 + 30?", "12 + 30 = 42."),
    ("Add 7 and 8.", "7 + 8 = 15."),
    ("What is the sum of 100 and 250?", "100 + 250 = 350."),
    ("Compute 3 + 4 + 5.", "3 + 4 + 5 = 12."),
    ("If I have 9 apples and get 6 more, how many do I have?", "9 + 6 = 15 apples."),
]

SKILL_QNA = "".join(
    [
        "version: 3\n",
        "created_by: demo-contributor\n",
        "task_description: Add small whole numbers and show the sum.\n",
        "seed_examples:\n",
        *(f"  - question: {q}\n    answer: {a}\n" for q, a in _EXAMPLES),
    ]
)

ATTRIBUTION = (
    "Title of work: Small sums\n"
    "Link to work: -\n"
    "Revision: -\n"
    "License of the work: CC-BY-4.0\n"
    "Creator names: Demo Contributor\n"
)

DEMO_FILES = {
    "README.md": "# Demo taxonomy\n\nServed by labbot's local GitHub simulator.\n",
    "compositional_skills/arithmetic/addition/qna.yaml": SKILL_QNA,
    "compositional_skills/arithmetic/addition/attribution.txt": ATTRIBUTION,
    "knowledge/.gitkeep": "",
}


def seed_demo(state: SimulatorState) -> str:
    """Create the demo world (silently); returns the repository's full name."""
    with state.lock:
        repo = state.create_repo(DEMO_ORG, DEMO_REPO, DEMO_FILES, org=True)
        state.set_team_member(DEMO_ORG, DEMO_TRIAGERS, "triager-tia", "member")
        state.set_team_member(DEMO_ORG, DEMO_MAINTAINERS, "maintainer-max", "maintainer")
        state.set_role(repo, "triager-tia", "triage")
        state.set_role(repo, "maintainer-max", "maintain")
        for name in ("skill", "knowledge", "triage-needed", "triage-approved", "triage-rejected"):
            state.label(repo, name)
        return repo.full_name
