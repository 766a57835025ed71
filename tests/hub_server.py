"""A loopback HTTP server that answers the Hugging Face Hub endpoints this project calls.

Shapes follow what `huggingface_hub` 2.x parses (hf_api.py, _commit_api.py, file_download.py, _jobs_api.py):
whoami-v2, repo create, preupload + NDJSON commit (every file "regular", so no LFS/xet), repo info, tree,
paths-info, resolve (HEAD + GET), and the Jobs API (create, inspect, SSE logs, cancel, list, hardware).
Every request is recorded so tests can assert on what was sent.
"""

import base64
import fnmatch
import hashlib
import json
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

USER = "tester"
TOKEN = "hf_loopback_secret_token_0123456789"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _sha(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class HubState:
    def __init__(self, hardware: list[dict]):
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.repos: dict[tuple[str, str], dict] = {}  # (type, id) -> {"files": {path: bytes}, "commits": [...]}
        self.jobs: dict[str, dict] = {}
        self.job_logs: dict[str, list[str]] = {}
        self.hardware = hardware
        self.fail_commits = 0  # answer this many commits with 503 first (transient errors)
        self.refuse_commits = False  # answer commits with 403 (token without write access)
        self.buckets: dict[str, dict[str, str]] = {}  # bucket id -> {path: xet hash}
        self.xorbs: dict[str, bytes] = {}

    def repo(self, repo_type: str, repo_id: str, create: bool = False) -> dict | None:
        key = (repo_type, repo_id)
        if key not in self.repos and create:
            self.repos[key] = {"files": {}, "commits": []}
        return self.repos.get(key)

    def add_files(self, repo_type: str, repo_id: str, files: dict[str, bytes], message: str = "seed"):
        with self.lock:
            repo = self.repo(repo_type, repo_id, create=True)
            repo["files"].update(files)
            repo["commits"].append({"oid": _sha(message.encode() + str(time.time()).encode()), "message": message,
                                    "files": sorted(files)})

    def sha(self, repo: dict) -> str:
        return repo["commits"][-1]["oid"] if repo["commits"] else "0" * 40


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: HubState

    def log_message(self, *args):  # keep test output clean
        pass

    # ---------------------------------------------------------------- plumbing

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload=None, headers: dict | None = None, raw: bytes | None = None):
        body = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else b"")
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if raw is None else "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, message: str):
        self._send(status, {"error": message}, headers={"X-Error-Message": message})

    def _record(self, body: bytes):
        parsed = urlparse(self.path)
        try:
            payload = json.loads(body) if body and body[:1] in (b"{", b"[") else None
        except ValueError:
            payload = None
        with self.state.lock:
            self.state.requests.append({
                "method": self.command, "path": parsed.path, "query": parse_qs(parsed.query),
                "authorization": self.headers.get("Authorization"), "json": payload,
                "body": body.decode("utf-8", "replace") if payload is None else None,
            })

    def _authorized(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {TOKEN}"

    def do_GET(self):
        self._dispatch(b"")

    def do_HEAD(self):
        self._dispatch(b"")

    def do_POST(self):
        self._dispatch(self._body())

    def do_PUT(self):
        self._dispatch(self._body())

    def do_DELETE(self):
        self._dispatch(self._body())

    def _dispatch(self, body: bytes):
        self._record(body)
        parsed = urlparse(self.path)
        parts = [unquote(p) for p in parsed.path.strip("/").split("/")]
        query = parse_qs(parsed.query)
        try:
            if parts[:2] == ["api", "whoami-v2"]:
                return self._whoami()
            if parts[:2] == ["api", "validate-yaml"]:
                return self._send(200, {"errors": [], "warnings": []})
            if parts[:2] == ["api", "jobs"]:
                return self._jobs(parts[2:], body, query)
            if parts[:2] == ["api", "buckets"]:
                return self._buckets(parts[2:], body)
            if parts[0] == "cas":
                return self._cas(parts[1:], body)
            if parts[:3] == ["api", "repos", "create"]:
                return self._create_repo(json.loads(body))
            if parts[0] == "api" and parts[1] in ("models", "datasets", "spaces"):
                return self._repo_api(parts[1][:-1], parts[2:], body, query)
            if parts[0] == "datasets" and "resolve" in parts:
                return self._resolve("dataset", parts[1:])
            if "resolve" in parts:
                return self._resolve("model", parts)
        except Exception as error:  # noqa: BLE001 - a test server reports, never dies
            return self._error(500, f"loopback hub error: {error!r}")
        return self._error(404, f"no route for {self.command} {parsed.path}")

    # ---------------------------------------------------------------- account and repos

    def _whoami(self):
        if not self._authorized():
            return self._error(401, "Invalid credentials in Authorization header")
        self._send(200, {"type": "user", "id": "0" * 24, "name": USER, "fullname": "Test User", "orgs": [],
                         "auth": {"type": "access_token", "accessToken": {"displayName": "tests", "role": "write"}}})

    def _create_repo(self, payload: dict):
        if not self._authorized():
            return self._error(401, "Invalid credentials in Authorization header")
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
        with self.state.lock:
            existed = self.state.repo(repo_type, repo_id) is not None
            self.state.repo(repo_type, repo_id, create=True)
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"http://{self.headers['Host']}/{prefix}{repo_id}"
        if existed:
            return self._send(409, {"error": "You already created this repo", "url": url})
        self._send(200, {"url": url, "name": repo_id, "id": repo_id})

    def _split_repo(self, rest: list[str]) -> tuple[str, list[str]]:
        return f"{rest[0]}/{rest[1]}", rest[2:]

    def _repo_api(self, repo_type: str, rest: list[str], body: bytes, query: dict):
        repo_id, tail = self._split_repo(rest)
        repo = self.state.repo(repo_type, repo_id)
        if tail[:1] == ["preupload"]:
            files = json.loads(body)["files"]
            return self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                              for f in files]})
        if tail[:1] == ["commit"]:
            return self._commit(repo_type, repo_id, body)
        if repo is None:
            return self._send(404, {"error": "Repository not found"}, headers={"X-Error-Code": "RepoNotFound"})
        if tail[:1] == ["revision"] or not tail:
            siblings = [{"rfilename": path} for path in sorted(repo["files"])]
            return self._send(200, {"id": repo_id, "_id": repo_id, "sha": self.state.sha(repo), "private": False,
                                    "siblings": siblings, "tags": [], "downloads": 0, "likes": 0,
                                    "lastModified": _now(), "author": repo_id.split("/")[0]})
        if tail[:1] == ["tree"]:
            prefix = "/".join(tail[2:]).strip("/")
            return self._send(200, self._tree(repo, prefix, query.get("recursive", ["false"])[0] in ("true", "1")))
        if tail[:1] == ["paths-info"]:
            wanted = parse_qs(body.decode()).get("paths", []) if body[:1] != b"{" else json.loads(body)["paths"]
            entries = [e for e in self._tree(repo, "", True) if e["path"] in wanted]
            folders = {p for p in wanted if any(f.startswith(p.rstrip("/") + "/") for f in repo["files"])}
            entries += [{"type": "directory", "path": p, "oid": _sha(p.encode()), "size": 0} for p in folders]
            return self._send(200, entries)
        return self._error(404, f"unsupported repo route {tail}")

    def _tree(self, repo: dict, prefix: str, recursive: bool) -> list[dict]:
        entries, folders = [], set()
        for path, data in sorted(repo["files"].items()):
            if prefix and not path.startswith(prefix + "/"):
                continue
            relative = path[len(prefix) + 1:] if prefix else path
            if "/" in relative and not recursive:
                folders.add((prefix + "/" if prefix else "") + relative.split("/")[0])
                continue
            if recursive:
                parts = path.split("/")
                folders.update("/".join(parts[:i]) for i in range(1, len(parts)) if "/".join(parts[:i]).startswith(prefix))
            entries.append({"type": "file", "path": path, "size": len(data), "oid": _sha(data)})
        entries += [{"type": "directory", "path": f, "oid": _sha(f.encode()), "size": 0} for f in sorted(folders)]
        return entries

    def _commit(self, repo_type: str, repo_id: str, body: bytes):
        if not self._authorized():
            return self._error(401, "Invalid credentials in Authorization header")
        if self.state.refuse_commits:
            return self._error(403, "You don't have the rights to create a commit in this repo (token is read-only)")
        with self.state.lock:
            if self.state.fail_commits > 0:
                self.state.fail_commits -= 1
                return self._error(503, "Service temporarily unavailable")
        header, files, deleted = {}, {}, []
        for line in body.decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            if item["key"] == "header":
                header = item["value"]
            elif item["key"] == "file":
                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] in ("deletedFile", "deletedFolder"):
                deleted.append(item["value"]["path"])
        with self.state.lock:
            repo = self.state.repo(repo_type, repo_id, create=True)
            for path in deleted:
                for existing in [p for p in repo["files"] if p == path or p.startswith(path.rstrip("/") + "/")]:
                    del repo["files"][existing]
            repo["files"].update(files)
            oid = _sha(body + str(time.time()).encode())
            repo["commits"].append({"oid": oid, "message": header.get("summary"), "files": sorted(files)})
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        self._send(200, {"commitUrl": f"http://{self.headers['Host']}/{prefix}{repo_id}/commit/{oid}",
                         "commitOid": oid, "pullRequestUrl": None})

    def _resolve(self, repo_type: str, parts: list[str]):
        index = parts.index("resolve")
        repo_id = "/".join(parts[:index])
        path = "/".join(parts[index + 2:])
        repo = self.state.repo(repo_type, repo_id)
        if repo is None:
            return self._send(404, {"error": "Repository not found"}, headers={"X-Error-Code": "RepoNotFound"})
        if path not in repo["files"]:
            return self._send(404, {"error": "Entry not found"}, headers={"X-Error-Code": "EntryNotFound"})
        data = repo["files"][path]
        self._send(200, raw=data, headers={"X-Repo-Commit": self.state.sha(repo), "ETag": f'"{_sha(data)}"'})

    # ---------------------------------------------------------------- buckets and the xet CAS (scripts shipped to jobs)

    def _buckets(self, rest: list[str], body: bytes):
        if not self._authorized():
            return self._error(401, "Invalid credentials in Authorization header")
        bucket_id = f"{rest[0]}/{rest[1]}"
        if len(rest) == 2 and self.command == "POST":
            if bucket_id in self.state.buckets:
                return self._send(409, {"error": "Bucket already exists"})
            self.state.buckets[bucket_id] = {}
            return self._send(200, {"url": f"http://{self.headers['Host']}/buckets/{bucket_id}", "name": rest[1],
                                    "id": bucket_id})
        if rest[2:] == ["xet-write-token"] or rest[2:] == ["xet-read-token"]:
            return self._send(200, {"accessToken": "xet_loopback", "exp": int(time.time()) + 3600,
                                    "casUrl": f"http://{self.headers['Host']}/cas"})
        if rest[2:] == ["batch"]:
            added = []
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["type"] == "addFile":
                    self.state.buckets.setdefault(bucket_id, {})[item["path"]] = item["xetHash"]
                    added.append(item["path"])
            return self._send(200, {"success": added, "failed": []})
        return self._error(404, f"unsupported bucket route {rest}")

    def _cas(self, rest: list[str], body: bytes):
        if rest[:2] == ["v1", "chunks"]:
            return self._error(404, "chunk not tracked")
        if rest[:2] == ["v1", "xorbs"]:
            self.state.xorbs[rest[-1]] = body
            return self._send(200, {"was_inserted": True})
        if rest[:2] == ["v1", "shards"]:
            return self._send(200, {"result": 1})
        return self._error(404, f"unsupported CAS route {rest}")

    # ---------------------------------------------------------------- jobs

    def _job_payload(self, job: dict) -> dict:
        return {key: value for key, value in job.items() if not key.startswith("_")}

    def _jobs(self, rest: list[str], body: bytes, query: dict):
        if rest == ["hardware"]:
            return self._send(200, self.state.hardware)
        if not self._authorized():
            return self._error(401, "Invalid credentials in Authorization header")
        namespace = rest[0]
        if len(rest) == 1 and self.command == "POST":
            spec = json.loads(body)
            job_id = uuid.uuid4().hex[:24]
            job = {"id": job_id, "createdAt": _now(), "dockerImage": spec.get("dockerImage"),
                   "spaceId": spec.get("spaceId"), "command": spec.get("command"), "arguments": spec.get("arguments", []),
                   "environment": spec.get("environment", {}),
                   "secrets": {key: "[encrypted]" for key in spec.get("secrets", {})},
                   "flavor": spec.get("flavor"), "labels": spec.get("labels"), "timeoutSeconds": spec.get("timeoutSeconds"),
                   "status": {"stage": "SCHEDULING", "message": None},
                   "owner": {"id": "0" * 24, "name": namespace, "type": "user"}, "_spec": spec}
            with self.state.lock:
                self.state.jobs[job_id] = job
                self.state.job_logs[job_id] = []
            return self._send(200, self._job_payload(job))
        if len(rest) == 1:
            return self._send(200, [self._job_payload(j) for j in self.state.jobs.values()
                                    if j["owner"]["name"] == namespace])
        job = self.state.jobs.get(rest[1])
        if job is None:
            return self._error(404, f"Job {rest[1]} not found")
        if len(rest) == 2:
            return self._send(200, self._job_payload(job))
        if rest[2] == "cancel":
            job["status"] = {"stage": "CANCELED", "message": "Canceled by user"}
            return self._send(200, {})
        if rest[2] == "logs":
            lines = self.state.job_logs.get(job["id"], [])
            tail = int(query["tail"][0]) if "tail" in query else None
            lines = lines[-tail:] if tail else lines
            events = "".join(f"data: {json.dumps({'timestamp': _now(), 'data': line})}\n\n" for line in lines)
            return self._send(200, raw=events.encode(), headers={"Content-Type": "text/event-stream"})
        return self._error(404, f"unsupported job route {rest}")


class LoopbackHub:
    """Runs the server on 127.0.0.1 in a thread; `endpoint` goes into HF_ENDPOINT."""

    def __init__(self, hardware: list[dict]):
        self.state = HubState(hardware)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def requests(self, method: str | None = None, path_glob: str = "*") -> list[dict]:
        return [r for r in self.state.requests
                if (method is None or r["method"] == method) and fnmatch.fnmatch(r["path"], path_glob)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
