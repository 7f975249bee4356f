"""The simulator's world: accounts, repositories, pull requests, check runs, installations, tokens,
and the logs of requests and webhook deliveries.

Everything is guarded by one re-entrant lock (`state.lock`): uvicorn serves requests on several
threads. Callers hold the lock for a whole operation; webhooks are sent after it is released so that
labbot may call back into the simulator while handling them.
"""

from __future__ import annotations

import base64
import copy
import itertools
import re
import secrets
import string
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from app.simulator.errors import ApiError, not_found
from app.simulator.gitstore import (
    MODE_EXECUTABLE,
    MODE_FILE,
    MODE_SUBMODULE,
    MODE_SYMLINK,
    FileChange,
    FileEntry,
    GitStore,
)
from app.simulator.models import (
    ROLES,
    Account,
    CheckRun,
    Comment,
    DeliveryRecord,
    Fault,
    Installation,
    Issue,
    Label,
    OAuthApp,
    OAuthCode,
    PullData,
    RateBucket,
    Reaction,
    Repo,
    RequestRecord,
    SimConfig,
    Team,
    Token,
    UserToken,
    utcnow,
)

# A change in a pull request or push: text, {"base64": ...}, {"symlink": target},
# {"submodule": sha}, {"executable": text}, or None to delete the path.
FileChangeSpec = str | dict[str, str] | None

_HEX40 = re.compile(r"[0-9a-f]{40}")
_TOKEN_ALPHABET = string.ascii_letters + string.digits
TOKEN_LIFETIME = timedelta(hours=1)
OAUTH_CODE_LIFETIME = timedelta(minutes=10)  # GitHub's codes expire after ten minutes
# Ids per kind of object start in separate ranges, so that passing one kind for another shows.
_ID_STARTS = {
    "account": 1000,
    "team": 100,
    "installation": 10,
    "repo": 500_000,
    "issue": 2_000_000,
    "pull": 3_000_000,
    "comment": 4_000_000,
    "label": 5_000_000,
    "reaction": 6_000_000,
    "check_run": 7_000_000,
    "check_suite": 8_000_000,
    "delivery": 9_000_000,
}


class OAuthError(Exception):
    """A token request GitHub refuses; `code` is GitHub's `error` value."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Caller:
    """Who a REST request acts as."""

    kind: Literal["app", "installation", "user"]
    login: str  # the App's slug, "<slug>[bot]", or the plain token's user
    installation: Installation | None = None
    permissions: Mapping[str, str] | None = None  # None: not limited (plain token)
    repos: frozenset[str] | None = None  # None: every repository the credential reaches
    rate_key: str = ""
    scopes: frozenset[str] | None = None  # an OAuth user token's scopes; None: not one


class SimulatorState:
    def __init__(self, config: SimConfig | None = None) -> None:
        self.lock = threading.RLock()
        self._initial_config = copy.deepcopy(config or SimConfig())
        self.generation = 0
        self.reset()

    def reset(self) -> None:
        """Forget everything but the start-up configuration."""
        with self.lock:
            self.generation += 1
            self.config = copy.deepcopy(self._initial_config)
            self.accounts: dict[str, Account] = {}
            self.repos: dict[str, Repo] = {}  # lower-case full name -> repo
            self.installations: dict[int, Installation] = {}
            self.tokens: dict[str, Token] = {}
            self.check_runs: dict[int, CheckRun] = {}
            self.check_suites: dict[tuple[str, str, int], int] = {}
            self.deliveries: list[DeliveryRecord] = []
            self.requests: list[RequestRecord] = []
            self.faults: list[Fault] = []
            self.rate: dict[str, RateBucket] = {}
            self._ids: dict[str, Iterator[int]] = {}
            self._diffs: dict[tuple[str, str], list[FileChange]] = {}
            # The OAuth web flow: codes handed out, user tokens minted, and who is signed in
            # on "github.com" in the browser (None: the authorize page asks).
            self.oauth_codes: dict[str, OAuthCode] = {}
            self.user_tokens: dict[str, UserToken] = {}
            self.signed_in: str | None = None

    def next_id(self, kind: str) -> int:
        counter = self._ids.get(kind)
        if counter is None:
            counter = self._ids[kind] = itertools.count(_ID_STARTS.get(kind, 1))
        return next(counter)

    # -- accounts ---------------------------------------------------------------------------

    def account(self, login: str, kind: Literal["User", "Organization", "Bot"] = "User") -> Account:
        """The account called `login`, created on first mention (GitHub's users all exist)."""
        acc = self.accounts.get(login.lower())
        if acc is None:
            if login.endswith("[bot]"):
                kind = "Bot"  # GitHub's logins with this suffix are all Apps' bots
            acc = Account(login, self.next_id("account"), kind)
            self.accounts[login.lower()] = acc
        elif kind == "Organization" and acc.type == "User":
            # A login first seen as a user turns out to be an organization.
            acc.type = "Organization"
        return acc

    def org(self, login: str) -> Account:
        acc = self.accounts.get(login.lower())
        if acc is None or acc.type != "Organization":
            raise not_found()
        return acc

    def set_team_member(self, org: str, team_slug: str, user: str, role: str | None) -> Team:
        """Add (role member/maintainer) or remove (role None) a team member; teams appear on use."""
        acc = self.account(org, "Organization")
        self.account(user)
        team = acc.teams.get(team_slug.lower())
        if team is None:
            team = Team(self.next_id("team"), team_slug.lower(), team_slug)
            acc.teams[team.slug] = team
        if role is None:
            team.members.pop(user.lower(), None)
        else:
            team.members[user.lower()] = role
            acc.members.add(user.lower())
        return team

    def set_org_member(self, org: str, user: str, member: bool) -> None:
        acc = self.account(org, "Organization")
        self.account(user)
        if member:
            acc.members.add(user.lower())
        else:
            acc.members.discard(user.lower())
            for team in acc.teams.values():
                team.members.pop(user.lower(), None)

    # -- repositories -----------------------------------------------------------------------

    def create_repo(
        self,
        owner: str,
        name: str,
        files: Mapping[str, FileChangeSpec],
        *,
        org: bool = False,
        private: bool = False,
        default_branch: str = "main",
        install: bool = True,
    ) -> Repo:
        key = f"{owner}/{name}".lower()
        if key in self.repos:
            raise ApiError(422, "Repository creation failed: name already exists on this account")
        acc = self.account(owner, "Organization" if org else "User")
        repo = Repo(self.next_id("repo"), acc.login, name, utcnow(), private, default_branch)
        snapshot = self.apply_changes(repo.git, {}, files)
        sha = repo.git.commit(snapshot, (), "Initial commit", acc.login, _ts())
        repo.branches[default_branch] = sha
        self.repos[key] = repo
        if install:
            inst = next(
                (i for i in self.installations.values() if i.account.lower() == acc.login.lower()),
                None,
            )
            if inst is None:
                inst = Installation(self.next_id("installation"), acc.login, set(), utcnow())
                self.installations[inst.id] = inst
            inst.repos.add(repo.full_name)
        return repo

    def repo(self, owner: str, name: str) -> Repo:
        repo = self.repos.get(f"{owner}/{name}".lower())
        if repo is None:
            raise not_found()
        return repo

    def repo_by_full_name(self, full_name: str) -> Repo:
        owner, _, name = full_name.partition("/")
        return self.repo(owner, name)

    def installation_for(self, repo: Repo) -> Installation | None:
        base = repo.fork_of or repo.full_name
        return next((i for i in self.installations.values() if base in i.repos), None)

    def create_installation(self, account: str, repos: list[str]) -> Installation:
        acc = self.account(account)
        full_names = {self.repo(acc.login, r.split("/")[-1]).full_name for r in repos}
        existing = next(
            (i for i in self.installations.values() if i.account.lower() == acc.login.lower()), None
        )
        if existing is not None:
            del self.installations[existing.id]
        inst = Installation(self.next_id("installation"), acc.login, full_names, utcnow())
        self.installations[inst.id] = inst
        return inst

    @staticmethod
    def apply_changes(
        git: GitStore, base: Mapping[str, FileEntry], changes: Mapping[str, FileChangeSpec]
    ) -> dict[str, FileEntry]:
        snapshot = dict(base)
        for path, change in changes.items():
            path = path.strip("/")
            if change is None:
                snapshot.pop(path, None)
                continue
            # A file replacing a directory, or the reverse, removes what was there.
            for existing in [p for p in snapshot if p.startswith(path + "/")]:
                del snapshot[existing]
            parts = path.split("/")
            for i in range(1, len(parts)):
                snapshot.pop("/".join(parts[:i]), None)
            snapshot[path] = _entry(git, change)
        return snapshot

    def resolve_ref(self, repo: Repo, ref: str) -> str | None:
        """A commit SHA for a branch, `refs/heads/...`, `refs/pull/N/head`, or a (short) SHA."""
        ref = ref.removeprefix("refs/heads/").removeprefix("heads/")
        if ref in repo.branches:
            return repo.branches[ref]
        pull = re.fullmatch(r"(?:refs/)?pull/(\d+)/head", ref)
        if pull:
            issue = repo.issues.get(int(pull.group(1)))
            return issue.pull.head_sha if issue and issue.pull else None
        if _HEX40.fullmatch(ref):
            return ref if repo.git.get_commit(ref) else None
        if len(ref) >= 7 and re.fullmatch(r"[0-9a-f]+", ref):
            found = [
                sha for sha in repo.git.objects if sha.startswith(ref) and repo.git.get_commit(sha)
            ]
            return found[0] if len(found) == 1 else None
        return None

    # -- issues and pull requests -----------------------------------------------------------

    def issue(self, repo: Repo, number: int) -> Issue:
        issue = repo.issues.get(number)
        if issue is None:
            raise not_found()
        return issue

    def pull(self, repo: Repo, number: int) -> Issue:
        issue = self.issue(repo, number)
        if issue.pull is None:
            raise not_found()
        return issue

    def open_issue(self, repo: Repo, author: str, title: str, body: str | None) -> Issue:
        self.account(author)
        now = utcnow()
        number = len(repo.issues) + 1
        issue = Issue(number, self.next_id("issue"), title, body, author, now, now)
        repo.issues[number] = issue
        return issue

    def open_pull(
        self,
        repo: Repo,
        author: str,
        title: str,
        body: str | None,
        files: Mapping[str, FileChangeSpec],
        *,
        draft: bool = False,
        head_ref: str | None = None,
        base_ref: str | None = None,
        fork: bool = False,
    ) -> Issue:
        base_ref = base_ref or repo.default_branch
        if base_ref not in repo.branches:
            raise ApiError(422, f"Base branch {base_ref!r} does not exist")
        issue = self.open_issue(repo, author, title, body)
        head_ref = head_ref or f"{author.lower()}/change-{issue.number}"
        merge_base = repo.branches[base_ref]
        snapshot = self.apply_changes(repo.git, repo.git.snapshot(merge_base), files)
        head = repo.git.commit(snapshot, (merge_base,), title, author, _ts())
        head_repo = repo
        if fork:
            head_repo = self._fork(repo, author)
        head_repo.branches[head_ref] = head
        issue.pull = PullData(
            self.next_id("pull"),
            head_ref,
            head,
            head_repo.full_name,
            base_ref,
            merge_base,
            [head],
            draft,
        )
        return issue

    def _fork(self, repo: Repo, author: str) -> Repo:
        key = f"{author}/{repo.name}".lower()
        fork = self.repos.get(key)
        if fork is None:
            acc = self.account(author)
            # Forks share the object store, as on GitHub, so PR head commits resolve in the base.
            fork = Repo(
                self.next_id("repo"),
                acc.login,
                repo.name,
                utcnow(),
                fork_of=repo.full_name,
                git=repo.git,
            )
            fork.branches = dict(repo.branches)
            self.repos[key] = fork
        return fork

    def push(
        self, repo: Repo, issue: Issue, files: Mapping[str, FileChangeSpec], message: str
    ) -> tuple[str, str]:
        pull = _pull(issue)
        if issue.state != "open":
            raise ApiError(422, "Cannot push to a closed pull request in the simulator")
        before = pull.head_sha
        snapshot = self.apply_changes(repo.git, repo.git.snapshot(before), files)
        after = repo.git.commit(snapshot, (before,), message, issue.user, _ts())
        pull.head_sha = after
        pull.commits.append(after)
        self.repo_by_full_name(pull.head_repo).branches[pull.head_ref] = after
        issue.updated_at = utcnow()
        return before, after

    def changed_files(self, repo: Repo, issue: Issue) -> list[FileChange]:
        """The files changed against the merge base (memoised: commits never change)."""
        pull = _pull(issue)
        key = (pull.merge_base, pull.head_sha)
        found = self._diffs.get(key)
        if found is None:
            found = repo.git.diff(
                repo.git.snapshot(pull.merge_base), repo.git.snapshot(pull.head_sha)
            )
            self._diffs[key] = found
        return found

    def set_state(self, issue: Issue, state: Literal["open", "closed"], actor: str) -> None:
        if state == "open" and issue.pull is not None and issue.pull.merged:
            raise ApiError(422, "Cannot reopen a merged pull request")
        issue.state = state
        issue.closed_at = utcnow() if state == "closed" else None
        issue.closed_by = actor if state == "closed" else None
        issue.updated_at = utcnow()

    def merge(self, repo: Repo, issue: Issue, actor: str) -> str:
        pull = _pull(issue)
        if issue.state != "open":
            raise ApiError(405, "Pull Request is not mergeable")
        base_head = repo.branches[pull.base_ref]
        head_snapshot = repo.git.snapshot(pull.head_sha)
        merged = dict(repo.git.snapshot(base_head))
        for change in self.changed_files(repo, issue):
            if change.previous_filename:
                merged.pop(change.previous_filename, None)
            if change.status == "removed":
                merged.pop(change.filename, None)
            else:
                merged[change.filename] = head_snapshot[change.filename]
        sha = repo.git.commit(
            merged, (base_head, pull.head_sha), f"Merge pull request #{issue.number}", actor, _ts()
        )
        repo.branches[pull.base_ref] = sha
        pull.merged, pull.merged_at = True, utcnow()
        pull.merged_by, pull.merge_commit_sha = actor, sha
        self.set_state(issue, "closed", actor)
        return sha

    # -- labels -----------------------------------------------------------------------------

    def label(self, repo: Repo, name: str, *, create: bool = True) -> Label:
        found = repo.labels.get(name.lower())
        if found is None:
            if not create:
                raise not_found()
            found = Label(self.next_id("label"), name)
            repo.labels[name.lower()] = found
        return found

    def add_labels(self, repo: Repo, issue: Issue, names: list[str]) -> list[Label]:
        """Labels newly put on the issue (those already there are not added twice)."""
        added = []
        for name in names:
            label = self.label(repo, name)
            if label.name not in issue.labels:
                issue.labels.append(label.name)
                added.append(label)
        if added:
            issue.updated_at = utcnow()
        return added

    def remove_label(self, repo: Repo, issue: Issue, name: str) -> Label | None:
        label = repo.labels.get(name.lower())
        if label is None or label.name not in issue.labels:
            return None
        issue.labels.remove(label.name)
        issue.updated_at = utcnow()
        return label

    # -- comments and reactions -------------------------------------------------------------

    def add_comment(
        self, repo: Repo, issue: Issue, user: str, body: str, *, via_app: bool = False
    ) -> Comment:
        self.account(user)
        now = utcnow()
        comment = Comment(self.next_id("comment"), issue.number, user, body, now, now, via_app)
        repo.comments[comment.id] = comment
        issue.comments.append(comment.id)
        issue.updated_at = now
        return comment

    def comment(self, repo: Repo, comment_id: int) -> Comment:
        comment = repo.comments.get(comment_id)
        if comment is None:
            raise not_found()
        return comment

    def edit_comment(self, comment: Comment, body: str) -> str:
        old, comment.body, comment.updated_at = comment.body, body, utcnow()
        return old

    def delete_comment(self, repo: Repo, comment: Comment) -> None:
        del repo.comments[comment.id]
        issue = repo.issues[comment.issue_number]
        issue.comments.remove(comment.id)

    def react(self, comment: Comment, user: str, content: str) -> tuple[Reaction, bool]:
        """The reaction and whether it is new (GitHub answers 200 for an existing one)."""
        for reaction in comment.reactions:
            if reaction.user == user and reaction.content == content:
                return reaction, False
        reaction = Reaction(self.next_id("reaction"), user, content, utcnow())
        comment.reactions.append(reaction)
        return reaction, True

    # -- who may do what --------------------------------------------------------------------

    def role_of(self, repo: Repo, login: str) -> str:
        """The user's role on the repository: admin, maintain, write, triage, read or none."""
        owner = self.accounts.get(repo.owner.lower())
        if login.lower() == repo.owner.lower():
            return "admin"
        candidates = [repo.roles.get(login.lower(), "none")]
        if owner is not None and owner.type == "Organization" and login.lower() in owner.members:
            candidates.append("read")  # the organization's base permission
        if not repo.private:
            candidates.append("read")
        return min(candidates, key=ROLES.index)

    def author_association(self, repo: Repo, login: str) -> str:
        lower = login.lower()
        owner = self.accounts.get(repo.owner.lower())
        if lower == repo.owner.lower():
            return "OWNER"
        if owner is not None and owner.type == "Organization" and lower in owner.members:
            return "MEMBER"
        if lower in repo.roles:
            return "COLLABORATOR"
        pulls = [
            i.pull for i in repo.issues.values() if i.pull is not None and i.user.lower() == lower
        ]
        if any(p.merged for p in pulls):
            return "CONTRIBUTOR"
        if pulls:
            return "FIRST_TIME_CONTRIBUTOR"
        return "NONE"

    def set_role(self, repo: Repo, login: str, role: str | None) -> None:
        self.account(login)
        if role is None or role == "none":
            repo.roles.pop(login.lower(), None)
        elif role in ROLES:
            repo.roles[login.lower()] = role
        else:
            raise ApiError(422, f"Unknown role {role!r}; use one of {', '.join(ROLES)}")

    # -- check runs -------------------------------------------------------------------------

    def check_suite_id(self, repo: Repo, head_sha: str) -> int:
        key = (repo.full_name, head_sha, self.config.app.id)
        if key not in self.check_suites:
            self.check_suites[key] = self.next_id("check_suite")
        return self.check_suites[key]

    def check_run(self, repo: Repo, check_run_id: int) -> CheckRun:
        run = self.check_runs.get(check_run_id)
        if run is None or run.repo != repo.full_name:
            raise not_found()
        return run

    # -- tokens -----------------------------------------------------------------------------

    def mint_token(
        self, inst: Installation, permissions: dict[str, str], repos: frozenset[str] | None
    ) -> Token:
        value = "ghs_" + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(36))
        token = Token(value, inst.id, utcnow() + TOKEN_LIFETIME, permissions, repos)
        self.tokens[value] = token
        return token

    def expire_tokens(self) -> int:
        now = utcnow() - timedelta(seconds=1)
        for token in self.tokens.values():
            token.expires_at = min(token.expires_at, now)
        return len(self.tokens)

    # -- the OAuth web flow -----------------------------------------------------------------

    def register_oauth_app(self, oauth_app: OAuthApp) -> OAuthApp:
        self.config.oauth_apps[oauth_app.client_id] = oauth_app
        return oauth_app

    def issue_oauth_code(
        self, oauth_app: OAuthApp, login: str, redirect_uri: str, scope: str
    ) -> OAuthCode:
        self.account(login)
        code = OAuthCode(
            secrets.token_hex(10),
            oauth_app.client_id,
            login,
            redirect_uri,
            scope,
            utcnow() + OAUTH_CODE_LIFETIME,
        )
        self.oauth_codes[code.code] = code
        return code

    def redeem_oauth_code(self, client_id: str, code: str, redirect_uri: str | None) -> UserToken:
        """A user token for a code, once; raises OAuthError with GitHub's error code."""
        found = self.oauth_codes.pop(code, None)  # single use, whatever happens next
        if found is None or found.client_id != client_id or found.expires_at <= utcnow():
            raise OAuthError("bad_verification_code")
        if redirect_uri and redirect_uri != found.redirect_uri:
            raise OAuthError("redirect_uri_mismatch")
        value = "gho_" + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(36))
        scopes = frozenset(s for s in found.scope.replace(",", " ").split() if s)
        token = UserToken(value, found.login, client_id, scopes, utcnow())
        self.user_tokens[value] = token
        return token

    def expire_oauth_codes(self) -> int:
        past = utcnow() - timedelta(seconds=1)
        for code in self.oauth_codes.values():
            code.expires_at = min(code.expires_at, past)
        return len(self.oauth_codes)

    # -- logs -------------------------------------------------------------------------------

    def take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                fault.remaining -= 1
                return fault
        return None

    def delivery(self, delivery_id: int) -> DeliveryRecord:
        found = next((d for d in self.deliveries if d.id == delivery_id), None)
        if found is None:
            raise not_found()
        return found


def _ts() -> int:
    return int(utcnow().timestamp())


def _pull(issue: Issue) -> PullData:
    if issue.pull is None:
        raise not_found()
    return issue.pull


def _entry(git: GitStore, change: str | dict[str, str]) -> FileEntry:
    if isinstance(change, str):
        return FileEntry(MODE_FILE, git.put_blob(change.encode("utf-8")))
    if not isinstance(change, dict) or len(change) != 1:
        raise ApiError(422, f"Unsupported file change {change!r}")
    ((kind, value),) = change.items()
    if kind == "base64":
        return FileEntry(MODE_FILE, git.put_blob(base64.b64decode(value)))
    if kind == "executable":
        return FileEntry(MODE_EXECUTABLE, git.put_blob(value.encode("utf-8")))
    if kind == "symlink":
        return FileEntry(MODE_SYMLINK, git.put_blob(value.encode("utf-8")))
    if kind == "submodule":
        if not _HEX40.fullmatch(value):
            raise ApiError(422, "A submodule change needs a 40-character commit SHA")
        return FileEntry(MODE_SUBMODULE, value)
    raise ApiError(
        422, f"Unsupported file change kind {kind!r}; use base64, executable, symlink or submodule"
    )
