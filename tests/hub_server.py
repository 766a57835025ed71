"""A loopback HTTP server that answers the Hugging Face Hub endpoints this project calls, and runs submitted Jobs.

Shapes follow what `huggingface_hub` 2.x parses (hf_api.py, _commit_api.py, file_download.py, _jobs_api.py):
whoami-v2, repo create, preupload + NDJSON commit (every file "regular", so no LFS/xet), repo info, tree,
paths-info, resolve (HEAD + GET, at a branch or a commit sha; a `Range: bytes=...` GET gets 206 with
`Content-Range`, as `datasets` reads parquet shards when it streams, and every answer says `Accept-Ranges: bytes`),
buckets (create, info, batch) and the xet CAS that `run_uv_job` ships local scripts through and Trackio stores
metrics through, Spaces as Trackio makes one (a gradio repo, secrets, variables, volumes, a runtime), and the Jobs
API (create, inspect, SSE logs, cancel, list, hardware). Every request is recorded (with its Range header) so tests
can assert on what was sent. A commit whose `parentCommit` is not the branch head gets 412, as on the Hub.

With `run_jobs=True` a created job really runs on this machine, as the platform would run it:
- `uv run [--with PKG] [--python V] SCRIPT ARGS` runs as `sys.executable SCRIPT ARGS` (the dev environment has every
  dependency; `--with` packages are recorded in `state.jobs[id]["_runner"]["with"]`, not installed). Other commands
  run as given, `python` mapped to `sys.executable`. Given a fork server (tests/fork_server.py, as the tests give
  one), a job that runs a Python script is forked from it, in a session of its own, instead of starting a fresh
  interpreter: the same process group to stop, 4 CPU seconds less a job.
- Each volume (the `jobs-artifacts` bucket that holds the shipped script, repos) is materialised into a per-job
  directory that stands for its mount path (`/data`); command arguments and env values under a mount path are
  rewritten to that directory. The job's cwd is a fresh per-job work dir and HF_HOME a fresh per-job cache.
- A job starts from a clean environment, as a container starts from its image: none of this process's variables
  but what running on this machine needs (PATH, library path, temp dir, thread count, uv/pip settings, the user cache as
  XDG_CACHE_HOME, a fresh HOME), then the job's env, its secrets, `JOB_ID`, and `HF_ENDPOINT` pointing back at this
  server, so a job pulls seeded models/datasets and pushes to repos here.
- Stages go SCHEDULING -> RUNNING -> COMPLETED (exit 0) / ERROR ("Job failed with exit code: N") / CANCELED.
  A job past its `timeoutSeconds` ends in ERROR with a message containing "timeout" (huggingface_hub 2.4 knows no
  TIMEOUT stage: `fetch_job_logs(follow=True)` and `wait_for_job` stop on its terminal stages only). Cancel, timeout
  and the end of the main process stop the job's whole process group (SIGTERM, then SIGKILL after GRACE_S), as the
  platform tears a container down; `close()` kills every running job.
- Logs stream over SSE: a running job's stream stays open and ends when the job does, so `follow=True` streams
  live and `follow=False` returns what is there (the client stops at the server's Date, as with the Hub).
- Network groups: a job created with `network_group` gets `HF_NETWORK_GROUP_HOSTNAME=<group>.jobs.internal` and
  `HF_NETWORK_GROUP_PREFIX=<group>-`; both names, and `${HF_NETWORK_GROUP_PREFIX}<alias>` for every alias a member
  claims, resolve to 127.0.0.1 (all members run here). Each member runs in its own mount namespace
  (`unshare --mount`, or `unshare --user --map-root-user --mount` when not root) with a per-group hosts file bind-
  mounted over /etc/hosts, updated in place as members join; the host's /etc/hosts is never edited. Where no
  mount namespace can be made, the member ends in ERROR with unshare's message in its log.

Dataset repos hold whatever files a test seeds, served as the Hub serves them: a README.md whose YAML declares
`configs:` (several, none the default) and parquet shards in a folder per configuration (tools/make_codeforces_like.py
writes one shaped like open-r1/codeforces-cots) are read by `datasets` itself through the tree, info and resolve
routes, so configuration errors and listings are the library's own.

Trackio logging from a job (`trackio.init(space_id=...)`, what TRL's `report_to="trackio"` calls) makes its Space
and its bucket here; no Space app runs (a Space stays BUILDING), so Trackio stores the run's metrics as JSONL
fragments in the bucket (`trackio/inbox/...`), which `LoopbackHub.bucket_files` reads back.

Job creation answers 400 for a flavor missing from the hardware list. Refusals tests can switch on (see HubState):
no pre-paid credit (402), a flavor the account cannot use (403), a token without the Jobs permission (403, and
whoami shows a fine-grained token without job.write), read-only tokens (403) and transient errors (503) for commits,
and bucket outages (`bucket_outages`: every route of a bucket answers 500, or its uploads 403).

`python tests/hub_server.py --run-jobs [--port N] [--seed-model NAME=DIR] [--seed-dataset NAME=FILE|DIR]` prints
`HF_ENDPOINT=<url>` and `HF_TOKEN=<token>`, then serves until SIGTERM/SIGINT.
"""

import argparse
import base64
import fnmatch
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from fork_client import ForkedProcess

USER = "tester"
TOKEN = "hf_loopback_secret_token_0123456789"
TERMINAL = ("COMPLETED", "CANCELED", "ERROR", "DELETED")
GRACE_S = 3  # between SIGTERM and SIGKILL when a job is stopped
HOSTS = Path("/etc/hosts")
MACHINE_VARIABLES = ("PATH", "LD_LIBRARY_PATH", "TMPDIR", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS",
                     "LLAMA_ARG_THREADS")  # this machine's


def _now(moment: float | None = None) -> str:
    moment = time.time() if moment is None else moment
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _sha(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


# ---------------------------------------------------------------- xet: what a bucket upload stores, read back

def _xet_hash(raw: bytes) -> str:
    """Xet prints a 32-byte hash as four little-endian u64 in hex."""
    return "".join(raw[i:i + 8][::-1].hex() for i in range(0, 32, 8))


def _lz4_block(data: bytes, out: bytearray, end: int):
    position = 0
    while position < end:
        token = data[position]
        position += 1
        length = token >> 4
        if length == 15:
            while True:
                extra = data[position]
                position += 1
                length += extra
                if extra != 255:
                    break
        out += data[position:position + length]
        position += length
        if position >= end:
            return
        offset = data[position] | data[position + 1] << 8
        position += 2
        length = token & 15
        if length == 15:
            while True:
                extra = data[position]
                position += 1
                length += extra
                if extra != 255:
                    break
        length += 4
        start = len(out) - offset
        for index in range(length):  # matches may overlap what they produce
            out.append(out[start + index])


def _lz4_frame(data: bytes) -> bytes:
    """Decodes an LZ4 frame (what xet's LZ4 chunk compression writes); blocks may refer to earlier ones."""
    flags = data[4]
    position = 7 + (8 if flags & 0x08 else 0) + (4 if flags & 0x01 else 0)
    out = bytearray()
    while True:
        (size,) = struct.unpack_from("<I", data, position)
        position += 4
        if size == 0:
            return bytes(out)
        stored, size = size & 0x80000000, size & 0x7FFFFFFF
        if stored:
            out += data[position:position + size]
        else:
            _lz4_block(data[position:position + size], out, size)
        position += size + (4 if flags & 0x10 else 0)


def _xorb_chunks(xorb: bytes, start: int, end: int) -> bytes:
    """Chunks [start, end) of a serialized xorb: 8-byte headers (version, size, scheme, raw size) then data."""
    out, position = bytearray(), 0
    for index in range(end):
        size, scheme = int.from_bytes(xorb[position + 1:position + 4], "little"), xorb[position + 4]
        raw_size = int.from_bytes(xorb[position + 5:position + 8], "little")
        data = xorb[position + 8:position + 8 + size]
        position += 8 + size
        if index < start:
            continue
        if scheme == 0:
            out += data
        elif scheme == 1:
            out += _lz4_frame(data)
        else:  # byte grouping: the four byte lanes of the chunk were stored one after the other
            grouped, raw, lane = _lz4_frame(data), bytearray(raw_size), 0
            for offset in range(4):
                count = len(range(offset, raw_size, 4))
                raw[offset::4] = grouped[lane:lane + count]
                lane += count
            out += raw
    return bytes(out)


def _shard_files(shard: bytes) -> dict[str, list[tuple[str, int, int]]]:
    """File hash -> [(xorb hash, first chunk, end chunk)] from the File Info section of an uploaded shard."""
    files, position = {}, 48  # after the header
    while True:
        file_hash, flags, count = shard[position:position + 32], *struct.unpack_from("<II", shard, position + 32)
        position += 48
        if file_hash == b"\xff" * 32:
            return files
        terms = []
        for _ in range(count):
            terms.append((_xet_hash(shard[position:position + 32]), *struct.unpack_from("<II", shard, position + 40)))
            position += 48
        position += (48 * count if flags & 1 << 31 else 0) + (48 if flags & 1 << 30 else 0)
        files[_xet_hash(file_hash)] = terms


# ---------------------------------------------------------------- state


class HubState:
    def __init__(self, hardware: list[dict]):
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # notified on new log lines and stage changes
        self.requests: list[dict] = []
        self.repos: dict[tuple[str, str], dict] = {}  # (type, id) -> {"files": {path: bytes}, "commits": [...]}
        self.jobs: dict[str, dict] = {}
        self.job_logs: dict[str, list[str]] = {}
        self.job_log_times: dict[str, list[str]] = {}  # lines a test appends itself get the time they are served
        self.hardware = hardware
        self.fail_commits = 0  # answer this many commits with 503 first (transient errors)
        self.refuse_commits = False  # answer commits with 403 (token without write access)
        self.no_credit = False  # answer job creation with 402 (no pre-paid credit)
        self.refused_flavors: set[str] = set()  # flavors the account cannot use: job creation answers 403
        self.token_without_jobs_scope = False  # a fine-grained token without job.write: job creation answers 403
        self.buckets: dict[str, dict[str, str]] = {}  # bucket id -> {path: xet hash}
        self.bucket_created: dict[str, str] = {}
        # bucket id -> "all": every route answers 500 (the service is down); "uploads": adding files answers 403
        # (writes refused while reads work; a 403 is not retried, so a test sees the failure at once)
        self.bucket_outages: dict[str, str] = {}
        self.spaces: dict[str, dict] = {}  # space id -> its settings: sdk, variables, secrets (keys only), volumes
        self.xorbs: dict[str, bytes] = {}
        self.xet_files: dict[str, list[tuple[str, int, int]]] = {}  # xet file hash -> terms, from uploaded shards
        self.runner: JobRunner | None = None

    def repo(self, repo_type: str, repo_id: str, create: bool = False) -> dict | None:
        key = (repo_type, repo_id)
        if key not in self.repos and create:
            self.repos[key] = {"files": {}, "commits": []}
        return self.repos.get(key)

    def add_files(self, repo_type: str, repo_id: str, files: dict[str, bytes], message: str = "seed"):
        with self.lock:
            repo = self.repo(repo_type, repo_id, create=True)
            repo["files"].update(files)
            self.record_commit(repo, _sha(message.encode() + str(time.time()).encode()), message, files)

    def record_commit(self, repo: dict, oid: str, message: str | None, files: dict):
        repo["commits"].append({"oid": oid, "message": message, "files": sorted(files), "tree": dict(repo["files"])})

    def sha(self, repo: dict) -> str:
        return repo["commits"][-1]["oid"] if repo["commits"] else "0" * 40

    def at(self, repo: dict, revision: str | None) -> tuple[str, dict] | None:
        """(commit sha, files) at a branch ("main") or a commit sha; None for an unknown revision."""
        if revision in (None, "main", "refs/heads/main"):
            return self.sha(repo), repo["files"]
        return next(((c["oid"], c["tree"]) for c in repo["commits"] if c["oid"] == revision), None)

    def space(self, space_id: str) -> dict:
        return self.spaces.setdefault(space_id, {"sdk": None, "variables": {}, "secrets": {}, "volumes": []})

    def xet_file(self, file_hash: str) -> bytes:
        return b"".join(_xorb_chunks(self.xorbs[xorb], start, end) for xorb, start, end in self.xet_files[file_hash])

    def log(self, job_id: str, line: str):
        with self.changed:
            self.job_logs[job_id].append(line)
            self.job_log_times[job_id].append(_now())
            self.changed.notify_all()

    def set_stage(self, job: dict, stage: str, message: str | None = None, **fields):
        with self.changed:
            job["status"] = {"stage": stage, "message": message}
            job.update(fields)
            self.changed.notify_all()


# ---------------------------------------------------------------- the Jobs runner


class JobRunner:
    """Runs created jobs as local process groups, the way the platform runs a job's container."""

    def __init__(self, state: HubState, endpoint: str, root: Path, fork_server: str | None = None):
        self.state, self.endpoint, self.root, self.fork_server = state, endpoint, root, fork_server
        self.threads: list[threading.Thread] = []
        self.closing = False

    def start(self, job: dict):
        thread = threading.Thread(target=self._run, args=(job,), daemon=True)
        self.threads.append(thread)
        thread.start()

    def stop(self, job: dict, reason: str):
        job.setdefault("_stop", reason)

    def close(self):
        self.closing = True
        for job in list(self.state.jobs.values()):
            self.stop(job, "closed")
        for thread in self.threads:
            thread.join(timeout=30)

    def _run(self, job: dict):
        job_dir = self.root / job["id"]
        try:
            argv, env = self._prepare(job, job_dir)
            process = self._start(argv, job_dir / "work", env)
        except (OSError, ValueError, LookupError) as error:
            self.state.log(job["id"], f"loopback runner: the job could not start: {error!r}")
            self.state.set_stage(job, "ERROR", f"Job failed to start: {error!r}", finishedAt=_now(), _finished=True)
            return
        job["_runner"]["pid"] = process.pid
        self.state.log(job["id"], f"===== Job started at {_now()} =====")
        with self.state.changed:
            if job["status"]["stage"] == "SCHEDULING":  # not canceled meanwhile
                job.update(status={"stage": "RUNNING", "message": None}, startedAt=_now())
        reader = threading.Thread(target=self._pump, args=(job, process.stdout), daemon=True)
        reader.start()
        code = self._supervise(job, process)
        self._signal(process, signal.SIGKILL)  # the container goes away with its main process
        reader.join(timeout=10)
        if job.get("_stop") == "cancel":
            stage, message = "CANCELED", job["status"]["message"]
        elif job.get("_stop") == "timeout":
            stage, message = "ERROR", f"Job timeout: stopped after {job['timeoutSeconds']}s"
        else:
            stage, message = ("COMPLETED", None) if code == 0 else ("ERROR", f"Job failed with exit code: {code}")
        self.state.set_stage(job, stage, message, finishedAt=_now(), _finished=True)

    def _start(self, argv: list[str], cwd: Path, env: dict):
        """The job's main process in a session of its own, its output on one pipe. A Python script is forked from
        the fork server when there is one (tests/fork_server.py: torch already imported), anything else is run."""
        if not (self.fork_server and argv[0] == sys.executable and len(argv) > 1 and not argv[1].startswith("-")):
            return subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        output, output_write = os.pipe()
        with open(os.devnull, "rb") as stdin:
            try:
                process = ForkedProcess(self.fork_server, argv[1:], env, cwd, (stdin.fileno(), output_write,
                                                                               output_write), session=True)
            finally:
                os.close(output_write)
        process.stdout = open(output, "rb")
        return process

    def _supervise(self, job: dict, process: subprocess.Popen) -> int:
        deadline = time.monotonic() + job["timeoutSeconds"] if job.get("timeoutSeconds") else None
        signaled_at = None
        while process.poll() is None:
            if deadline and time.monotonic() > deadline:
                self.stop(job, "timeout")
            if job.get("_stop") and signaled_at is None:
                self._signal(process, signal.SIGKILL if self.closing else signal.SIGTERM)
                signaled_at = time.monotonic()
            if signaled_at is not None and time.monotonic() - signaled_at > GRACE_S:
                self._signal(process, signal.SIGKILL)
            time.sleep(0.1)
        return process.returncode if process.returncode >= 0 else 128 - process.returncode  # as a container reports

    def _signal(self, process: subprocess.Popen, signum: int):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass

    def _pump(self, job: dict, stream):
        for raw in stream:
            self.state.log(job["id"], raw.decode("utf-8", "replace").rstrip("\r\n"))

    def _prepare(self, job: dict, job_dir: Path) -> tuple[list[str], dict]:
        spec = job["_spec"]
        (job_dir / "work").mkdir(parents=True)
        mounts = {}
        for volume in spec.get("volumes") or []:
            local = job_dir / "mounts" / volume["mountPath"].strip("/")
            self._materialise(volume, local)
            mounts[volume["mountPath"].rstrip("/")] = str(local)
        command = [_local_path(arg, mounts) for arg in [*spec["command"], *spec.get("arguments", [])]]
        argv, packages = _interpreter_argv(command)
        job["_runner"] = {"argv": argv, "with": packages, "dir": str(job_dir), "mounts": mounts}
        env = self._machine_env(job_dir)
        env.update({key: _local_path(str(value), mounts) for key, value in spec.get("environment", {}).items()})
        env.update(spec.get("secrets") or {})
        env.update(JOB_ID=job["id"], HF_ENDPOINT=self.endpoint, HF_HOME=str(job_dir / "hf_home"))
        if spec.get("network"):
            hostname, prefix, hosts = self._join_group(job, spec["network"])
            env.update(HF_NETWORK_GROUP_HOSTNAME=hostname, HF_NETWORK_GROUP_PREFIX=prefix)
            unshare = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--mount"]
            argv = [*unshare, "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts), *argv]
        return argv, env

    def _machine_env(self, job_dir: Path) -> dict:
        """A container starts from its image, not from whoever submitted the job: this process's environment stays
        out (an HF_HUB_OFFLINE=1 here must not hide a job that needs the Hub). What running here needs comes in: the
        machine's PATH, libraries and temp dir, uv/pip settings so a `uv run` inside the job works offline as it
        does here, a fresh home, and the user cache (the tiny models, the llama.cpp build) as XDG_CACHE_HOME."""
        env = {key: value for key, value in os.environ.items()
               if key in MACHINE_VARIABLES or key.startswith(("UV_", "PIP_"))}
        (job_dir / "home").mkdir()
        return env | {"HOME": str(job_dir / "home"),
                      "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")}

    def _materialise(self, volume: dict, local: Path):
        if volume["type"] == "bucket":
            if volume["source"] not in self.state.buckets:
                raise ValueError(f"bucket {volume['source']} not found")
            files, read = self.state.buckets[volume["source"]], self.state.xet_file
        else:
            repo = self.state.repo(volume["type"], volume["source"])
            found = repo and self.state.at(repo, volume.get("revision"))
            if not found:
                raise ValueError(f"{volume['type']} {volume['source']} not found")
            files, read = found[1], bytes
        prefix = (volume.get("path") or "").strip("/")
        local.mkdir(parents=True, exist_ok=True)
        for path, content in files.items():
            if prefix and not path.startswith(prefix + "/"):
                continue
            target = local / (path[len(prefix) + 1:] if prefix else path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(read(content))

    def _join_group(self, job: dict, network: dict) -> tuple[str, str, Path]:
        group, namespace = network["group"], job["owner"]["name"]
        hostname, prefix = f"{group}.jobs.internal", f"{group}-"
        with self.state.lock:
            members = [j for j in self.state.jobs.values() if (j.get("network") or {}).get("group") == group
                       and j["owner"]["name"] == namespace]
        aliases = sorted({alias for member in members for alias in member["network"].get("aliases") or []})
        hosts = self.root / "network" / f"{namespace}--{group}.hosts"
        hosts.parent.mkdir(parents=True, exist_ok=True)
        names = " ".join([hostname, *(prefix + alias for alias in aliases)])
        with open(hosts, "w") as file:  # in place: members already running see the new aliases through their mount
            file.write(f"{HOSTS.read_text().rstrip()}\n127.0.0.1 {names}\n")
        return hostname, prefix, hosts


def _local_path(text: str, mounts: dict[str, str]) -> str:
    """`/data/x` -> the per-job directory standing for the `/data` mount; `--flag=/data/x` too."""
    flag, equals, value = text.rpartition("=") if text.startswith("-") and "=" in text else ("", "", text)
    for mount, local in mounts.items():
        if value == mount or value.startswith(mount + "/"):
            return flag + equals + local + value[len(mount):]
    return text


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """`bytes=a-b`, `bytes=a-` or `bytes=-n` -> the inclusive (first, last) byte, as RFC 9110 reads one range; None
    when it cannot be satisfied (416). Several ranges in one header are answered with the first, as a server may."""
    unit, _, spec = header.partition("=")
    first, dash, last = spec.split(",")[0].strip().partition("-")
    if unit.strip() != "bytes" or not dash or not (first or last):
        return None
    if not first:  # a suffix: the last n bytes
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    return (start, end) if start <= end and start < size else None


def _interpreter_argv(command: list[str]) -> tuple[list[str], list[str]]:
    """`uv run [options] script args` -> [this Python, script, args] and the `--with` packages it asked for."""
    if command[:2] != ["uv", "run"]:
        return ([sys.executable, *command[1:]] if command[0] in ("python", "python3") else command), []
    rest, packages = command[2:], []
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        if option == "--":
            break
        name, _, value = option.partition("=")
        if not value and name in ("--with", "--python", "-p", "--with-requirements", "--index", "--extra-index-url",
                                  "--env-file", "--directory", "--project"):
            value = rest.pop(0)
        if name == "--with":
            packages.append(value)
    if rest and rest[0] in ("python", "python3"):
        rest.pop(0)
    return [sys.executable, *rest], packages


# ---------------------------------------------------------------- HTTP


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

    def _error(self, status: int, message: str, code: str | None = None):
        headers = {"X-Error-Message": message} | ({"X-Error-Code": code} if code else {})
        self._send(status, {"error": message}, headers=headers)

    def _record(self, body: bytes):
        parsed = urlparse(self.path)
        try:
            payload = json.loads(body) if body and body[:1] in (b"{", b"[") else None
        except ValueError:
            payload = None
        with self.state.lock:
            self.state.requests.append({
                "method": self.command, "path": parsed.path, "query": parse_qs(parsed.query),
                "authorization": self.headers.get("Authorization"), "range": self.headers.get("Range"), "json": payload,
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
        except (BrokenPipeError, ConnectionResetError):
            return None
        except Exception as error:  # noqa: BLE001 - a test server reports, never dies
            return self._error(500, f"loopback hub error: {error!r}")
        return self._error(404, f"no route for {self.command} {parsed.path}")

    # ---------------------------------------------------------------- account and repos

    def _whoami(self):
        if not self._authorized():
            return self._error(401, "Invalid credentials in Authorization header")
        token = {"displayName": "tests", "role": "write"}
        if self.state.token_without_jobs_scope:
            token = {"displayName": "tests", "role": "fineGrained", "fineGrained": {
                "canReadGatedRepos": True, "global": [],
                "scoped": [{"entity": {"_id": "0" * 24, "type": "user", "name": USER},
                            "permissions": ["repo.content.read", "repo.write"]}]}}
        self._send(200, {"type": "user", "id": "0" * 24, "name": USER, "fullname": "Test User", "orgs": [],
                         "auth": {"type": "access_token", "accessToken": token}})

    def _create_repo(self, payload: dict):
        if not self._authorized():
            return self._error(401, "Invalid credentials in Authorization header")
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
        with self.state.lock:
            existed = self.state.repo(repo_type, repo_id) is not None
            self.state.repo(repo_type, repo_id, create=True)
            if repo_type == "space" and not existed:
                self.state.space(repo_id)["sdk"] = payload.get("sdk")
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
        if repo_type == "space" and tail in (["variables"], ["secrets"], ["volumes"], ["runtime"]):
            return self._space_settings(repo_id, tail[0], body)
        found = self.state.at(repo, tail[1] if len(tail) > 1 else None)
        if found is None:
            return self._error(404, f"Invalid rev id: {tail[1]}", code="RevisionNotFound")
        sha, files = found
        if tail[:1] == ["revision"] or not tail:
            siblings = [{"rfilename": path} for path in sorted(files)]
            space = {"sdk": self.state.space(repo_id)["sdk"], "runtime": self._space_runtime(repo_id)} \
                if repo_type == "space" else {}
            return self._send(200, {"id": repo_id, "_id": repo_id, "sha": sha, "private": False,
                                    "siblings": siblings, "tags": [], "downloads": 0, "likes": 0,
                                    "lastModified": _now(), "author": repo_id.split("/")[0], **space})
        if tail[:1] == ["tree"]:
            prefix = "/".join(tail[2:]).strip("/")
            return self._send(200, self._tree(files, prefix, query.get("recursive", ["false"])[0] in ("true", "1")))
        if tail[:1] == ["paths-info"]:
            wanted = parse_qs(body.decode()).get("paths", []) if body[:1] != b"{" else json.loads(body)["paths"]
            entries = [e for e in self._tree(files, "", True) if e["path"] in wanted]
            folders = {p for p in wanted if any(f.startswith(p.rstrip("/") + "/") for f in files)}
            entries += [{"type": "directory", "path": p, "oid": _sha(p.encode()), "size": 0} for p in folders]
            return self._send(200, entries)
        return self._error(404, f"unsupported repo route {tail}")

    def _space_runtime(self, space_id: str) -> dict:
        """No Space app runs here: a Space stays BUILDING, so a client waiting for it (Trackio's) keeps what it logs in
        the Space's bucket, as it does while a real Space starts."""
        return {"stage": "BUILDING", "hardware": {"current": None, "requested": "cpu-basic"},
                "volumes": self.state.space(space_id)["volumes"]}

    def _space_settings(self, space_id: str, setting: str, body: bytes):
        """Variables, secrets (write-only: their keys are kept, never their values), volumes and the runtime."""
        if not self._authorized():
            return self._error(401, "Invalid credentials in Authorization header")
        space, payload = self.state.space(space_id), json.loads(body) if body else {}
        if setting == "runtime":
            return self._send(200, self._space_runtime(space_id))
        if setting == "volumes":
            space["volumes"] = payload.get("volumes", []) if self.command == "PUT" else []
            return self._send(200, {})
        entries = space[setting]
        if self.command == "POST":
            entries[payload["key"]] = {"description": payload.get("description"), "updatedAt": _now()} \
                | ({"value": payload["value"]} if setting == "variables" else {})
        elif self.command == "DELETE":
            entries.pop(payload["key"], None)
        return self._send(200, entries)

    def _tree(self, files: dict, prefix: str, recursive: bool) -> list[dict]:
        entries, folders = [], set()
        for path, data in sorted(files.items()):
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
            if header.get("parentCommit") not in (None, self.state.sha(repo)):
                return self._error(412, "A commit has happened since. Please refresh and try again.")
            for path in deleted:
                for existing in [p for p in repo["files"] if p == path or p.startswith(path.rstrip("/") + "/")]:
                    del repo["files"][existing]
            repo["files"].update(files)
            oid = _sha(body + str(time.time()).encode())
            self.state.record_commit(repo, oid, header.get("summary"), files)
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
        found = self.state.at(repo, parts[index + 1])
        if found is None:
            return self._error(404, f"Invalid rev id: {parts[index + 1]}", code="RevisionNotFound")
        sha, files = found
        if path not in files:
            return self._send(404, {"error": "Entry not found"}, headers={"X-Error-Code": "EntryNotFound"})
        data = files[path]
        headers = {"X-Repo-Commit": sha, "ETag": f'"{_sha(data)}"', "Accept-Ranges": "bytes"}
        wanted = self.headers.get("Range")
        if not wanted:
            return self._send(200, raw=data, headers=headers)
        span = _byte_range(wanted, len(data))
        if span is None:
            return self._send(416, raw=b"", headers={**headers, "Content-Range": f"bytes */{len(data)}"})
        start, end = span
        self._send(206, raw=data[start:end + 1], headers={**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"})

    # ---------------------------------------------------------------- buckets and the xet CAS (scripts shipped to jobs)

    def _buckets(self, rest: list[str], body: bytes):
        if not self._authorized():
            return self._error(401, "Invalid credentials in Authorization header")
        bucket_id = f"{rest[0]}/{rest[1]}"
        outage = self.state.bucket_outages.get(bucket_id)
        if outage == "all":
            return self._error(500, "Internal Error - We're working hard to fix this as soon as possible!")
        if outage == "uploads" and rest[2:] == ["batch"]:
            return self._error(403, "You don't have write access to this bucket")
        if len(rest) == 2 and self.command == "POST":
            url = f"http://{self.headers['Host']}/buckets/{bucket_id}"
            if bucket_id in self.state.buckets:
                return self._send(409, {"error": "Bucket already exists", "url": url})
            self.state.buckets[bucket_id] = {}
            self.state.bucket_created[bucket_id] = _now()
            return self._send(200, {"url": url, "name": rest[1], "id": bucket_id})
        if bucket_id not in self.state.buckets:
            return self._error(404, "Bucket not found", code="RepoNotFound")  # the code huggingface_hub reads
        if len(rest) == 2 and self.command == "GET":
            files = self.state.buckets[bucket_id]
            return self._send(200, {"id": bucket_id, "private": False, "totalFiles": len(files),
                                    "createdAt": self.state.bucket_created[bucket_id],
                                    "size": sum(len(self.state.xet_file(h)) for h in files.values())})
        if rest[2:] == ["xet-write-token"] or rest[2:] == ["xet-read-token"]:
            return self._send(200, {"accessToken": "xet_loopback", "exp": int(time.time()) + 3600,
                                    "casUrl": f"http://{self.headers['Host']}/cas"})
        if rest[2:] == ["batch"]:
            added = []
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["type"] == "addFile":
                    self.state.buckets[bucket_id][item["path"]] = item["xetHash"]
                    added.append(item["path"])
            return self._send(200, {"success": added, "failed": []})
        return self._error(404, f"unsupported bucket route {rest}")

    def _cas(self, rest: list[str], body: bytes):
        if rest[:2] == ["v1", "chunks"]:
            return self._error(404, "chunk not tracked")
        if rest[:2] == ["v1", "xorbs"]:
            self.state.xorbs[rest[-1]] = body
            return self._send(200, {"was_inserted": True})
        if rest[:2] == ["v1", "shards"]:  # a v2 upload gets 404 and falls back to v1
            self.state.xet_files.update(_shard_files(body))
            return self._send(200, {"result": 1})
        return self._error(404, f"unsupported CAS route {rest}")

    # ---------------------------------------------------------------- jobs

    def _job_payload(self, job: dict) -> dict:
        return {key: value for key, value in job.items() if not key.startswith("_")}

    def _refuse_job(self, spec: dict) -> bool:
        flavor = spec.get("flavor")
        names = {h["name"] for h in self.state.hardware}
        if self.state.token_without_jobs_scope:
            self._error(403, "This fine-grained token does not have the 'job.write' permission needed to start Jobs. "
                             "Edit its permissions at https://huggingface.co/settings/tokens")
        elif names and flavor not in names:
            self._error(400, f"Invalid flavor '{flavor}'. Available flavors: {', '.join(sorted(names))}")
        elif flavor in self.state.refused_flavors:
            self._error(403, f"The flavor '{flavor}' is not available for your account. Choose another flavor.")
        elif self.state.no_credit:
            self._error(402, "You need pre-paid credits to run Jobs. Add credits at "
                             "https://huggingface.co/settings/billing")
        else:
            return False
        return True

    def _jobs(self, rest: list[str], body: bytes, query: dict):
        if rest == ["hardware"]:
            return self._send(200, self.state.hardware)
        if not self._authorized():
            return self._error(401, "Invalid credentials in Authorization header")
        namespace = rest[0]
        if len(rest) == 1 and self.command == "POST":
            spec = json.loads(body)
            if self._refuse_job(spec):
                return None
            job_id = uuid.uuid4().hex[:24]
            job = {"id": job_id, "createdAt": _now(), "dockerImage": spec.get("dockerImage"),
                   "spaceId": spec.get("spaceId"), "command": spec.get("command"), "arguments": spec.get("arguments", []),
                   "environment": spec.get("environment", {}),
                   "secrets": {key: "[encrypted]" for key in spec.get("secrets", {})},
                   "flavor": spec.get("flavor"), "labels": spec.get("labels"), "timeoutSeconds": spec.get("timeoutSeconds"),
                   "volumes": spec.get("volumes"), "network": spec.get("network"),
                   "status": {"stage": "SCHEDULING", "message": None},
                   "owner": {"id": "0" * 24, "name": namespace, "type": "user"}, "_spec": spec}
            with self.state.lock:
                self.state.jobs[job_id] = job
                self.state.job_logs[job_id] = []
                self.state.job_log_times[job_id] = []
            if self.state.runner:
                self.state.runner.start(job)
            return self._send(200, self._job_payload(job))
        if len(rest) == 1:
            labels = dict(label.split("=", 1) for label in query.get("label", []))
            return self._send(200, [self._job_payload(j) for j in list(self.state.jobs.values())
                                    if j["owner"]["name"] == namespace
                                    and (not query.get("stage") or j["status"]["stage"] in query["stage"])
                                    and labels.items() <= (j.get("labels") or {}).items()])
        job = self.state.jobs.get(rest[1])
        if job is None:
            return self._error(404, f"Job {rest[1]} not found")
        if len(rest) == 2:
            return self._send(200, self._job_payload(job))
        if rest[2] == "cancel":
            if job["status"]["stage"] not in TERMINAL:
                self.state.set_stage(job, "CANCELED", "Canceled by user")
                if self.state.runner:
                    self.state.runner.stop(job, "cancel")
            return self._send(200, {})
        if rest[2] == "logs":
            return self._logs(job, query)
        return self._error(404, f"unsupported job route {rest}")

    def _logs(self, job: dict, query: dict):
        """SSE events; a job the runner runs streams until it has ended, an inert one replays what is there."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        with self.state.lock:
            count = len(self.state.job_logs[job["id"]])
        sent = max(count - int(query["tail"][0]), 0) if "tail" in query else 0
        while True:
            with self.state.changed:
                lines, times = self.state.job_logs[job["id"]][sent:], self.state.job_log_times[job["id"]][sent:]
                ended = self.state.runner is None or job.get("_finished") or self.state.runner.closing
                if not lines and not ended:
                    self.state.changed.wait(timeout=1)
                    continue
            events = "".join(f"data: {json.dumps({'timestamp': times[i] if i < len(times) else _now(), 'data': line})}"
                             "\n\n" for i, line in enumerate(lines))
            self.wfile.write(events.encode())
            self.wfile.flush()
            sent += len(lines)
            if ended:
                return


class LoopbackHub:
    """Runs the server on 127.0.0.1 in a thread; `endpoint` goes into HF_ENDPOINT. `run_jobs=True` runs jobs."""

    def __init__(self, hardware: list[dict], run_jobs: bool = False, port: int = 0, fork_server: str | None = None):
        self.state = HubState(hardware)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.jobs_dir = Path(tempfile.mkdtemp(prefix="loopback-jobs-")) if run_jobs else None
        if run_jobs:
            self.state.runner = JobRunner(self.state, self.endpoint, self.jobs_dir, fork_server)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def requests(self, method: str | None = None, path_glob: str = "*") -> list[dict]:
        return [r for r in self.state.requests
                if (method is None or r["method"] == method) and fnmatch.fnmatch(r["path"], path_glob)]

    def seed_model(self, name: str, directory: str | Path):
        """Every file under `directory` becomes model repo `name` (loads with from_pretrained(name))."""
        directory = Path(directory)
        self.state.add_files("model", name, {path.relative_to(directory).as_posix(): path.read_bytes()
                                             for path in sorted(directory.rglob("*")) if path.is_file()})

    def bucket_files(self, bucket_id: str) -> dict[str, bytes]:
        """A bucket's files as a download reads them back from the xet CAS."""
        files = self.state.buckets.get(bucket_id, {})
        return {path: self.state.xet_file(file_hash) for path, file_hash in files.items()}

    def expire_job(self, job_id: str):
        """The job's time runs out now: the runner stops it as it does at its `timeoutSeconds`. Lets a test time a
        job out at a chosen point (after its first checkpoint push) instead of at a wall-clock deadline that a slow
        machine may reach before the job has done anything."""
        self.state.runner.stop(self.state.jobs[job_id], "timeout")

    def seed_dataset(self, name: str, source: str | Path | dict):
        """Dataset repo `name` from a file (loads with load_dataset(name, split="train")), a directory (every file
        under it, at its relative path: a README.md declaring `configs:`, parquet shards in folders) or a
        {repo path: bytes} mapping (tools/make_codeforces_like.files())."""
        if isinstance(source, dict):
            files = source
        elif Path(source).is_dir():
            files = {path.relative_to(source).as_posix(): path.read_bytes()
                     for path in sorted(Path(source).rglob("*")) if path.is_file()}
        else:
            files = {Path(source).name: Path(source).read_bytes()}
        self.state.add_files("dataset", name, files)

    def close(self):
        if self.state.runner:
            self.state.runner.close()
            with self.state.changed:
                self.state.changed.notify_all()
        self.server.shutdown()
        self.server.server_close()
        if self.jobs_dir:
            shutil.rmtree(self.jobs_dir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description="A loopback Hugging Face Hub (and Jobs runner) for trials and tests.")
    parser.add_argument("--run-jobs", action="store_true", help="really run submitted jobs on this machine")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--seed-model", action="append", default=[], metavar="NAME=DIR",
                        help="preload model repo NAME (owner/name) with the files under DIR (repeatable)")
    parser.add_argument("--seed-dataset", action="append", default=[], metavar="NAME=PATH",
                        help="preload dataset repo NAME (owner/name) with a FILE, or every file under a DIR "
                             "(tools/make_codeforces_like.py writes one) (repeatable)")
    args = parser.parse_args()
    seeds = []
    for kind, items in (("model", args.seed_model), ("dataset", args.seed_dataset)):
        for item in items:
            name, _, path = item.partition("=")
            if name.count("/") != 1 or not Path(path).exists():
                parser.exit(2, f"--seed-{kind} {item!r} must be owner/name=PATH with an existing PATH.\n")
            seeds.append((kind, name, path))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "skills" / "hf-llm-trainer" / "scripts"))
    import plan

    hub = LoopbackHub(plan.catalogue_as_api(), run_jobs=args.run_jobs, port=args.port)
    for kind, name, path in seeds:
        (hub.seed_model if kind == "model" else hub.seed_dataset)(name, path)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"HF_ENDPOINT={hub.endpoint}\nHF_TOKEN={TOKEN}", flush=True)
    stop.wait()
    hub.close()


if __name__ == "__main__":
    main()
