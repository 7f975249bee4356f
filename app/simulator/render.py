"""JSON shapes of GitHub's REST resources (and of the objects inside webhook payloads, which are the
same shapes). Field sets follow the schemas of the OpenAPI description; the test-suite checks every
response against them.

URLs point at the simulator (`Urls.api`) so that clients following `url` fields stay on it.
"""

from __future__ import annotations

import base64
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.simulator.gitstore import OBJECT_TYPE, FileChange, TreeItem
from app.simulator.models import (
    REACTIONS,
    Account,
    CheckRun,
    Comment,
    Installation,
    Issue,
    Label,
    Reaction,
    Repo,
    Team,
    iso,
)
from app.simulator.state import SimulatorState

JsonObj = dict[str, Any]


@dataclass(frozen=True)
class Urls:
    api: str  # where the simulator's REST API is served, without a trailing slash
    html: str  # the web UI links in payloads point to (github.com by default)


def node_id(kind: str, ident: int) -> str:
    return base64.b64encode(f"0{len(kind)}:{kind}{ident}".encode()).decode()


def quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def b64_lines(data: bytes) -> str:
    """Base64 wrapped at 60 characters per line, as the contents and blobs APIs send it."""
    encoded = base64.b64encode(data).decode()
    return "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))


class Renderer:
    def __init__(self, state: SimulatorState, urls: Urls) -> None:
        self.state = state
        self.api = urls.api
        self.html = urls.html

    # -- accounts ---------------------------------------------------------------------------

    def user(self, login: str | None) -> JsonObj | None:
        if login is None:
            return None
        return self.account(self.state.account(login))

    def account(self, acc: Account) -> JsonObj:
        u = f"{self.api}/users/{quote(acc.login)}"
        html = (
            f"{self.html}/apps/{acc.login.removesuffix('[bot]')}"
            if acc.type == "Bot"
            else f"{self.html}/{acc.login}"
        )
        return {
            "login": acc.login,
            "id": acc.id,
            "node_id": node_id(acc.type, acc.id),
            "avatar_url": f"https://avatars.githubusercontent.com/u/{acc.id}?v=4",
            "gravatar_id": "",
            "url": u,
            "html_url": html,
            "followers_url": f"{u}/followers",
            "following_url": f"{u}/following{{/other_user}}",
            "gists_url": f"{u}/gists{{/gist_id}}",
            "starred_url": f"{u}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{u}/subscriptions",
            "organizations_url": f"{u}/orgs",
            "repos_url": f"{u}/repos",
            "events_url": f"{u}/events{{/privacy}}",
            "received_events_url": f"{u}/received_events",
            "type": acc.type,
            "user_view_type": "public",
            "site_admin": False,
        }

    def organization(self, acc: Account) -> JsonObj:
        """The short organization object of webhook payloads and `GET /orgs/{org}`."""
        u = f"{self.api}/orgs/{quote(acc.login)}"
        return {
            "login": acc.login,
            "id": acc.id,
            "node_id": node_id("Organization", acc.id),
            "url": u,
            "repos_url": f"{u}/repos",
            "events_url": f"{u}/events",
            "hooks_url": f"{u}/hooks",
            "issues_url": f"{u}/issues",
            "members_url": f"{u}/members{{/member}}",
            "public_members_url": f"{u}/public_members{{/member}}",
            "avatar_url": f"https://avatars.githubusercontent.com/u/{acc.id}?v=4",
            "description": None,
        }

    def organization_full(self, acc: Account) -> JsonObj:
        return {
            **self.organization(acc),
            "html_url": f"{self.html}/{acc.login}",
            "has_organization_projects": True,
            "has_repository_projects": True,
            "public_repos": sum(1 for r in self.state.repos.values() if r.owner == acc.login),
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": "2020-01-01T00:00:00Z",
            "updated_at": "2020-01-01T00:00:00Z",
            "archived_at": None,
            "type": "Organization",
        }

    def team(self, org: Account, team: Team) -> JsonObj:
        u = f"{self.api}/orgs/{quote(org.login)}/teams/{team.slug}"
        return {
            "id": team.id,
            "node_id": node_id("Team", team.id),
            "url": u,
            "html_url": f"{self.html}/orgs/{org.login}/teams/{team.slug}",
            "name": team.name,
            "slug": team.slug,
            "description": None,
            "privacy": "closed",
            "notification_setting": "notifications_enabled",
            "permission": "pull",
            "members_url": f"{u}/members{{/member}}",
            "repositories_url": f"{u}/repos",
            "type": "organization",
            "parent": None,
        }

    # -- repositories -----------------------------------------------------------------------

    def repo(self, repo: Repo, *, full: bool = True) -> JsonObj:
        u = f"{self.api}/repos/{repo.full_name}"
        html = f"{self.html}/{repo.full_name}"
        owner = self.state.account(repo.owner)
        open_issues = sum(1 for i in repo.issues.values() if i.state == "open")
        out: JsonObj = {
            "id": repo.id,
            "node_id": node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "owner": self.account(owner),
            "html_url": html,
            "description": None,
            "fork": repo.fork_of is not None,
            "url": u,
        }
        for key, suffix in _REPO_LINKS:
            out[key] = u + suffix
        out.update(
            {
                "created_at": iso(repo.created_at),
                "updated_at": iso(repo.created_at),
                "pushed_at": iso(repo.created_at),
                "git_url": f"git://{_host(self.html)}/{repo.full_name}.git",
                "ssh_url": f"git@{_host(self.html)}:{repo.full_name}.git",
                "clone_url": f"{html}.git",
                "svn_url": html,
                "homepage": None,
                "size": 0,
                "stargazers_count": 0,
                "watchers_count": 0,
                "language": None,
                "has_issues": True,
                "has_projects": True,
                "has_downloads": True,
                "has_wiki": True,
                "has_pages": False,
                "has_discussions": False,
                "forks_count": 0,
                "mirror_url": None,
                "archived": False,
                "disabled": False,
                "open_issues_count": open_issues,
                "license": None,
                "allow_forking": True,
                "is_template": False,
                "web_commit_signoff_required": False,
                "topics": [],
                "visibility": "private" if repo.private else "public",
                "forks": 0,
                "open_issues": open_issues,
                "watchers": 0,
                "default_branch": repo.default_branch,
            }
        )
        if full:
            out["network_count"] = 0
            out["subscribers_count"] = 0
            if owner.type == "Organization":
                out["organization"] = self.account(owner)
            if repo.fork_of is not None:
                parent = self.state.repo_by_full_name(repo.fork_of)
                out["parent"] = out["source"] = self.repo(parent, full=False)
        return out

    def repo_ref(self, repo: Repo) -> JsonObj:
        """The short repository object of installation payloads."""
        return {
            "id": repo.id,
            "node_id": node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
        }

    # -- labels, issues, pull requests ------------------------------------------------------

    def label(self, repo: Repo, label: Label) -> JsonObj:
        return {
            "id": label.id,
            "node_id": node_id("Label", label.id),
            "url": f"{self.api}/repos/{repo.full_name}/labels/{quote(label.name)}",
            "name": label.name,
            "color": label.color,
            "default": label.default,
            "description": label.description,
        }

    def issue_labels(self, repo: Repo, issue: Issue) -> list[JsonObj]:
        return [self.label(repo, self.state.label(repo, name)) for name in issue.labels]

    def reactions(self, url: str, reactions: list[Reaction]) -> JsonObj:
        out: JsonObj = {"url": url, "total_count": len(reactions)}
        for content in REACTIONS:
            out[content] = sum(1 for r in reactions if r.content == content)
        return out

    def issue(self, repo: Repo, issue: Issue) -> JsonObj:
        u = f"{self.api}/repos/{repo.full_name}/issues/{issue.number}"
        kind = "pull" if issue.pull else "issues"
        out: JsonObj = {
            "url": u,
            "repository_url": f"{self.api}/repos/{repo.full_name}",
            "labels_url": f"{u}/labels{{/name}}",
            "comments_url": f"{u}/comments",
            "events_url": f"{u}/events",
            "html_url": f"{self.html}/{repo.full_name}/{kind}/{issue.number}",
            "id": issue.id,
            "node_id": node_id("Issue", issue.id),
            "number": issue.number,
            "title": issue.title,
            "user": self.user(issue.user),
            "labels": self.issue_labels(repo, issue),
            "state": issue.state,
            "locked": False,
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "comments": len(issue.comments),
            "created_at": iso(issue.created_at),
            "updated_at": iso(issue.updated_at),
            "closed_at": iso(issue.closed_at),
            "author_association": self.state.author_association(repo, issue.user),
            "active_lock_reason": None,
            "body": issue.body,
            "closed_by": self.user(issue.closed_by),
            "reactions": self.reactions(f"{u}/reactions", []),
            "timeline_url": f"{u}/timeline",
            "performed_via_github_app": None,
            "state_reason": _state_reason(issue),
        }
        if issue.pull is not None:
            p = f"{self.api}/repos/{repo.full_name}/pulls/{issue.number}"
            web = f"{self.html}/{repo.full_name}/pull/{issue.number}"
            out["draft"] = issue.pull.draft
            out["pull_request"] = {
                "url": p,
                "html_url": web,
                "diff_url": f"{web}.diff",
                "patch_url": f"{web}.patch",
                "merged_at": iso(issue.pull.merged_at),
            }
        return out

    def pull(self, repo: Repo, issue: Issue) -> JsonObj:
        pull = issue.pull
        assert pull is not None
        u = f"{self.api}/repos/{repo.full_name}/pulls/{issue.number}"
        issue_url = f"{self.api}/repos/{repo.full_name}/issues/{issue.number}"
        web = f"{self.html}/{repo.full_name}/pull/{issue.number}"
        head_repo = self.state.repo_by_full_name(pull.head_repo)
        statuses = f"{self.api}/repos/{repo.full_name}/statuses/{pull.head_sha}"
        changes = self.state.changed_files(repo, issue)
        links = {
            "self": u,
            "html": web,
            "issue": issue_url,
            "comments": f"{issue_url}/comments",
            "review_comments": f"{u}/comments",
            "review_comment": f"{self.api}/repos/{repo.full_name}/pulls/comments{{/number}}",
            "commits": f"{u}/commits",
            "statuses": statuses,
        }
        return {
            "url": u,
            "id": pull.id,
            "node_id": node_id("PullRequest", pull.id),
            "html_url": web,
            "diff_url": f"{web}.diff",
            "patch_url": f"{web}.patch",
            "issue_url": issue_url,
            "number": issue.number,
            "state": issue.state,
            "locked": False,
            "title": issue.title,
            "user": self.user(issue.user),
            "body": issue.body,
            "created_at": iso(issue.created_at),
            "updated_at": iso(issue.updated_at),
            "closed_at": iso(issue.closed_at),
            "merged_at": iso(pull.merged_at),
            "merge_commit_sha": pull.merge_commit_sha,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "labels": self.issue_labels(repo, issue),
            "milestone": None,
            "draft": pull.draft,
            "commits_url": f"{u}/commits",
            "review_comments_url": f"{u}/comments",
            "review_comment_url": links["review_comment"],
            "comments_url": f"{issue_url}/comments",
            "statuses_url": statuses,
            "head": self._branch(head_repo, pull.head_ref, pull.head_sha),
            "base": self._branch(repo, pull.base_ref, repo.branches[pull.base_ref]),
            "_links": {k: {"href": v} for k, v in links.items()},
            "author_association": self.state.author_association(repo, issue.user),
            "auto_merge": None,
            "active_lock_reason": None,
            "merged": pull.merged,
            "mergeable": None if issue.state == "closed" else True,
            "rebaseable": None if issue.state == "closed" else True,
            "mergeable_state": "draft"
            if pull.draft
            else ("unknown" if issue.state == "closed" else "clean"),
            "merged_by": self.user(pull.merged_by),
            "comments": len(issue.comments),
            "review_comments": 0,
            "maintainer_can_modify": pull.head_repo != repo.full_name,
            "commits": len(pull.commits),
            "additions": sum(c.additions for c in changes),
            "deletions": sum(c.deletions for c in changes),
            "changed_files": len(changes),
        }

    def _branch(self, repo: Repo, ref: str, sha: str) -> JsonObj:
        return {
            "label": f"{repo.owner}:{ref}",
            "ref": ref,
            "sha": sha,
            "user": self.user(repo.owner),
            "repo": self.repo(repo, full=False),
        }

    def pull_minimal(self, repo: Repo, issue: Issue) -> JsonObj:
        pull = issue.pull
        assert pull is not None
        head_repo = self.state.repo_by_full_name(pull.head_repo)

        def side(r: Repo, ref: str, sha: str) -> JsonObj:
            return {
                "ref": ref,
                "sha": sha,
                "repo": {"id": r.id, "url": f"{self.api}/repos/{r.full_name}", "name": r.name},
            }

        return {
            "url": f"{self.api}/repos/{repo.full_name}/pulls/{issue.number}",
            "id": pull.id,
            "number": issue.number,
            "head": side(head_repo, pull.head_ref, pull.head_sha),
            "base": side(repo, pull.base_ref, repo.branches[pull.base_ref]),
        }

    def file_change(self, repo: Repo, head_sha: str, change: FileChange) -> JsonObj:
        path = urllib.parse.quote(change.filename)
        out: JsonObj = {
            "sha": change.sha,
            "filename": change.filename,
            "status": change.status,
            "additions": change.additions,
            "deletions": change.deletions,
            "changes": change.additions + change.deletions,
            "blob_url": f"{self.html}/{repo.full_name}/blob/{head_sha}/{path}",
            "raw_url": f"{self.html}/{repo.full_name}/raw/{head_sha}/{path}",
            "contents_url": f"{self.api}/repos/{repo.full_name}/contents/{path}?ref={head_sha}",
        }
        if change.patch is not None:
            out["patch"] = change.patch
        if change.previous_filename is not None:
            out["previous_filename"] = change.previous_filename
        return out

    # -- comments ---------------------------------------------------------------------------

    def comment(self, repo: Repo, comment: Comment) -> JsonObj:
        u = f"{self.api}/repos/{repo.full_name}/issues/comments/{comment.id}"
        issue = repo.issues[comment.issue_number]
        kind = "pull" if issue.pull else "issues"
        return {
            "url": u,
            "html_url": f"{self.html}/{repo.full_name}/{kind}/{issue.number}"
            f"#issuecomment-{comment.id}",
            "issue_url": f"{self.api}/repos/{repo.full_name}/issues/{issue.number}",
            "id": comment.id,
            "node_id": node_id("IssueComment", comment.id),
            "user": self.user(comment.user),
            "created_at": iso(comment.created_at),
            "updated_at": iso(comment.updated_at),
            "author_association": self.state.author_association(repo, comment.user),
            "body": comment.body,
            "reactions": self.reactions(f"{u}/reactions", comment.reactions),
            "performed_via_github_app": self.integration() if comment.via_app else None,
        }

    def reaction(self, reaction: Reaction) -> JsonObj:
        return {
            "id": reaction.id,
            "node_id": node_id("Reaction", reaction.id),
            "user": self.user(reaction.user),
            "content": reaction.content,
            "created_at": iso(reaction.created_at),
        }

    # -- apps -------------------------------------------------------------------------------

    def integration(self) -> JsonObj:
        app = self.state.config.app
        return {
            "id": app.id,
            "slug": app.slug,
            "node_id": node_id("Integration", app.id),
            "client_id": f"Iv1.sim{app.id:010d}",
            "owner": self.user(app.owner),
            "name": app.name,
            "description": "labbot, served by the local GitHub simulator",
            "external_url": f"{self.html}/apps/{app.slug}",
            "html_url": f"{self.html}/apps/{app.slug}",
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "permissions": dict(app.permissions),
            "events": list(app.events),
            "installations_count": len(self.state.installations),
        }

    def installation(self, inst: Installation) -> JsonObj:
        app = self.state.config.app
        acc = self.state.account(inst.account)
        return {
            "id": inst.id,
            "account": self.account(acc),
            "repository_selection": "selected",
            "access_tokens_url": f"{self.api}/app/installations/{inst.id}/access_tokens",
            "repositories_url": f"{self.api}/installation/repositories",
            "html_url": f"{self.html}/settings/installations/{inst.id}",
            "app_id": app.id,
            "app_slug": app.slug,
            "target_id": acc.id,
            "target_type": acc.type,
            "permissions": dict(app.permissions),
            "events": list(app.events),
            "created_at": iso(inst.created_at),
            "updated_at": iso(inst.created_at),
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": None,
            "suspended_at": None,
        }

    # -- checks -----------------------------------------------------------------------------

    def check_run(self, repo: Repo, run: CheckRun) -> JsonObj:
        u = f"{self.api}/repos/{repo.full_name}/check-runs/{run.id}"
        pulls = [
            self.pull_minimal(repo, i)
            for i in repo.issues.values()
            if i.pull is not None and i.state == "open" and i.pull.head_sha == run.head_sha
        ]
        return {
            "id": run.id,
            "head_sha": run.head_sha,
            "node_id": node_id("CheckRun", run.id),
            "external_id": run.external_id or "",
            "url": u,
            "html_url": f"{self.html}/{repo.full_name}/runs/{run.id}",
            "details_url": run.details_url or f"{self.html}/apps/{self.state.config.app.slug}",
            "status": run.status,
            "conclusion": run.conclusion,
            "started_at": iso(run.started_at),
            "completed_at": iso(run.completed_at),
            "output": {
                "title": run.title,
                "summary": run.summary,
                "text": run.text,
                "annotations_count": len(run.annotations),
                "annotations_url": f"{u}/annotations",
            },
            "name": run.name,
            "check_suite": {"id": run.suite_id},
            "app": self.integration(),
            "pull_requests": pulls,
        }

    def annotation(self, repo: Repo, run: CheckRun, ann: dict[str, Any]) -> JsonObj:
        return {
            "path": ann["path"],
            "blob_href": f"{self.html}/{repo.full_name}/blob/{run.head_sha}/"
            + urllib.parse.quote(ann["path"]),
            "start_line": ann["start_line"],
            "end_line": ann["end_line"],
            "start_column": ann.get("start_column"),
            "end_column": ann.get("end_column"),
            "annotation_level": ann.get("annotation_level"),
            "title": ann.get("title"),
            "message": ann.get("message"),
            "raw_details": ann.get("raw_details"),
        }

    # -- git data ---------------------------------------------------------------------------

    def content_entry(
        self, repo: Repo, ref: str, path: str, item: TreeItem, *, in_listing: bool
    ) -> JsonObj:
        """A contents-API object; `in_listing` gives the directory-listing quirk for submodules."""
        kind = {"040000": "dir", "120000": "symlink", "160000": "submodule"}.get(item.mode, "file")
        if in_listing and kind == "submodule":
            kind = "file"  # GitHub's documented backwards-compatible quirk
        quoted = urllib.parse.quote(path)
        ref_q = urllib.parse.quote(ref, safe="")
        u = f"{self.api}/repos/{repo.full_name}/contents/{quoted}?ref={ref_q}"
        git_kind = "trees" if item.mode == "040000" else "blobs"
        git_url = f"{self.api}/repos/{repo.full_name}/git/{git_kind}/{item.sha}"
        html = f"{self.html}/{repo.full_name}/{'tree' if kind == 'dir' else 'blob'}/{ref}/{quoted}"
        download = (
            f"https://raw.githubusercontent.com/{repo.full_name}/{ref}/{quoted}"
            if kind in ("file", "symlink") and item.mode != "160000"
            else None
        )
        if item.mode == "160000":
            git_url = html = None  # type: ignore[assignment]
        return {
            "type": kind,
            "size": repo.git.size(item) if item.mode not in ("040000", "160000") else 0,
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": item.sha,
            "url": u,
            "git_url": git_url,
            "html_url": html,
            "download_url": download,
            "_links": {"self": u, "git": git_url, "html": html},
        }

    def tree_entry(self, repo: Repo, path: str, item: TreeItem) -> JsonObj:
        kind = OBJECT_TYPE[item.mode]
        out: JsonObj = {"path": path, "mode": item.mode, "type": kind, "sha": item.sha}
        if kind == "blob":
            out["size"] = repo.git.size(item)
        if kind != "commit":
            plural = "trees" if kind == "tree" else "blobs"
            out["url"] = f"{self.api}/repos/{repo.full_name}/git/{plural}/{item.sha}"
        return out

    def commit(self, repo: Repo, sha: str) -> JsonObj:
        commit = repo.git.get_commit(sha)
        assert commit is not None
        u = f"{self.api}/repos/{repo.full_name}/commits/{sha}"
        when = iso(datetime.fromtimestamp(commit.timestamp, UTC))
        ident = {
            "name": commit.author,
            "email": f"{commit.author}@users.noreply.github.com",
            "date": when,
        }
        return {
            "url": u,
            "sha": sha,
            "node_id": node_id("Commit", int(sha[:8], 16)),
            "html_url": f"{self.html}/{repo.full_name}/commit/{sha}",
            "comments_url": f"{u}/comments",
            "commit": {
                "url": f"{self.api}/repos/{repo.full_name}/git/commits/{sha}",
                "author": ident,
                "committer": ident,
                "message": commit.message,
                "comment_count": 0,
                "tree": {
                    "sha": commit.tree,
                    "url": f"{self.api}/repos/{repo.full_name}/git/trees/{commit.tree}",
                },
                "verification": {
                    "verified": False,
                    "reason": "unsigned",
                    "payload": None,
                    "signature": None,
                    "verified_at": None,
                },
            },
            "author": self.user(commit.author),
            "committer": self.user(commit.author),
            "parents": [
                {
                    "sha": p,
                    "url": f"{self.api}/repos/{repo.full_name}/commits/{p}",
                    "html_url": f"{self.html}/{repo.full_name}/commit/{p}",
                }
                for p in commit.parents
            ],
        }


_REPO_LINKS = [
    ("forks_url", "/forks"),
    ("keys_url", "/keys{/key_id}"),
    ("collaborators_url", "/collaborators{/collaborator}"),
    ("teams_url", "/teams"),
    ("hooks_url", "/hooks"),
    ("issue_events_url", "/issues/events{/number}"),
    ("events_url", "/events"),
    ("assignees_url", "/assignees{/user}"),
    ("branches_url", "/branches{/branch}"),
    ("tags_url", "/tags"),
    ("blobs_url", "/git/blobs{/sha}"),
    ("git_tags_url", "/git/tags{/sha}"),
    ("git_refs_url", "/git/refs{/sha}"),
    ("trees_url", "/git/trees{/sha}"),
    ("statuses_url", "/statuses/{sha}"),
    ("languages_url", "/languages"),
    ("stargazers_url", "/stargazers"),
    ("contributors_url", "/contributors"),
    ("subscribers_url", "/subscribers"),
    ("subscription_url", "/subscription"),
    ("commits_url", "/commits{/sha}"),
    ("git_commits_url", "/git/commits{/sha}"),
    ("comments_url", "/comments{/number}"),
    ("issue_comment_url", "/issues/comments{/number}"),
    ("contents_url", "/contents/{+path}"),
    ("compare_url", "/compare/{base}...{head}"),
    ("merges_url", "/merges"),
    ("archive_url", "/{archive_format}{/ref}"),
    ("downloads_url", "/downloads"),
    ("issues_url", "/issues{/number}"),
    ("pulls_url", "/pulls{/number}"),
    ("milestones_url", "/milestones{/number}"),
    ("notifications_url", "/notifications{?since,all,participating}"),
    ("labels_url", "/labels{/name}"),
    ("releases_url", "/releases{/id}"),
    ("deployments_url", "/deployments"),
]


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or "github.com"


def _state_reason(issue: Issue) -> str | None:
    return "completed" if issue.state == "closed" else None
