"""run.json: the record of one training run. The trainer writes it; evaluations and GGUF exports append to it, in
the run's output directory or in the Hub repo it pushed to, sometimes while training goes on. Every write merges what
the other writers wrote: locally a read-modify-write under a file lock and an atomic replace, on the Hub a commit on
the parent it read, merged again and retried when another writer committed first. `append_to_run` is the one way to
write; `push_run` is the trainer's push of its own record, which keeps what others appended to the repo's copy."""

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from .errors import BadInput

RUN_FILE = "run.json"
# The lists other writers append to. A writer that pushes its own copy of the record keeps the entries of these lists
# it does not have; every other field is the writer's own.
APPENDED = ("evaluations", "exports")
HUB_ATTEMPTS = 12


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_from_env() -> dict:
    """The job this process runs in: HF Jobs sets JOB_ID (jobs.py adds the namespace for the link, and the group id
    of a multi-node job); the local backend of jobs.py sets JOB_ID and HFLT_JOB_URL."""
    job_id = os.environ.get("JOB_ID")
    url = os.environ.get("HFLT_JOB_URL")
    if job_id and not url and os.environ.get("HFLT_JOB_NAMESPACE"):
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
        url = f"{endpoint}/jobs/{os.environ['HFLT_JOB_NAMESPACE']}/{job_id}"
    group = os.environ.get("HFLT_JOB_GROUP")
    return {"id": job_id, "url": url} | ({"group": group} if group else {})


def is_local(target) -> bool:
    """A Path, or a string naming something on disk, is a local run; any other string is a Hub model repo id."""
    return isinstance(target, Path) or Path(target).exists()


def record_file(target) -> Path:
    """The run.json of a local run: `target` is its directory (existing or not yet) or a .json file itself."""
    path = Path(target)
    return path if path.suffix == ".json" and not path.is_dir() else path / RUN_FILE


def read_run(target) -> dict:
    """A run's record, {} when it has none yet: a local run directory or its run.json, or a Hub model repo id."""
    if is_local(target):
        return parse_record(record_file(target))
    return read_hub_run(str(target))[0]


def locate_run(target: str, flag: str = "") -> str | None:
    """The run `target` names, as append_to_run takes it: a local directory holding run.json (given as the
    directory or the file) or a Hub model repo id whose repo has a run.json; None when there is no record there.
    A record that cannot be read, a repo that does not exist or a Hub out of reach is refused (BadInput, its
    sentence opening with `flag`)."""
    target = str(target)
    path = Path(target)
    if path.is_file() and path.name == RUN_FILE:
        path = path.parent
    if path.is_dir():
        if not (path / RUN_FILE).exists():
            return None
        parse_record(path / RUN_FILE)
        return str(path)
    if path.exists() or not is_repo_id(target):
        raise BadInput(f"{flag} {target!r} is neither a run directory (with run.json) nor a Hub model repo id."
                       .lstrip())
    return target if read_hub_run(target)[0] else None


def is_repo_id(text: str) -> bool:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return "/" in text and not text.startswith((".", "/"))


def append_to_run(target, fields: dict | None = None, append: dict | None = None,
                  message: str = "Update run.json", create: bool = False) -> dict:
    """Merges `fields` into the run's record and appends `append`'s entries to its lists; returns the record written.
    `target` is a local run directory (locked read-modify-write, atomic replace: a reader never sees half a file and
    concurrent writers never lose each other's entries) or a Hub model repo id (a commit on the parent read, redone
    on top of the new head when another writer committed first). A run without a record is refused unless `create`
    (the trainer's first write)."""
    def change(record: dict) -> dict:
        if not record and not create:
            raise BadInput(f"{target} has no {RUN_FILE}; pass the output directory or the Hub repo of a training run.")
        record = record | (fields or {})
        for key, entries in (append or {}).items():
            existing = record.get(key)
            record[key] = (existing if isinstance(existing, list) else []) + list(entries)
        return record

    if is_local(target):
        if not create and not record_file(target).exists():
            change({})  # refused before anything is made
        return update_local_run(target, change)
    return update_hub_run(str(target), change, message)


def merge_runs(ours: dict, theirs: dict) -> dict:
    """`ours` written over `theirs`, keeping what only `theirs` has: its other fields, and the entries of the
    appended lists that `ours` lacks."""
    merged = theirs | ours
    for key in APPENDED:
        mine, other = ours.get(key), theirs.get(key)
        if isinstance(other, list):
            mine = mine if isinstance(mine, list) else []
            merged[key] = mine + [entry for entry in other if entry not in mine]
    return merged


def push_run(directory, repo: str, message: str, revision: str | None = None) -> dict:
    """The trainer's push of its record: the repo's record is merged into the local one (under the local lock) and
    the result committed on the parent that was read, so evaluations and exports recorded in the repo meanwhile stay
    in both. A repo record that cannot be read is replaced by the local one, with a warning."""
    return update_hub_run(repo, lambda theirs: update_local_run(directory, lambda ours: merge_runs(ours, theirs)),
                          message, revision=revision, unreadable_is_empty=True)


def lockless(error: OSError) -> bool:
    """Whether a lock was refused because the filesystem has none (some network mounts)."""
    import errno

    return error.errno in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP)


class RecordLock:
    """An exclusive lock beside a run.json, for one read-modify-write. The lock file is removed by its holder before
    it lets go, so a run directory keeps only run.json; a waiter that wakes on a removed lock file takes the new one."""

    def __init__(self, record: Path):
        self.path = record.with_name(f".{record.name}.lock")
        self.fd = None

    def __enter__(self):
        import fcntl

        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # its directory was removed meanwhile
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as error:  # a filesystem without locks (some network mounts): write unlocked
                if not lockless(error):
                    raise
            try:
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    self.fd = fd
                    return self
            except FileNotFoundError:  # the previous holder removed it while this one waited
                pass
            os.close(fd)

    def __exit__(self, *exc):
        os.unlink(self.path)
        os.close(self.fd)


def parse_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text()) if path.exists() else {}
    except (ValueError, UnicodeDecodeError):
        raise BadInput(f"{path} is not valid JSON; restore it (or move it away) and run again.")
    if not isinstance(record, dict):
        raise BadInput(f"{path} is not a run record (a JSON object); restore it (or move it away) and run again.")
    return record


def update_local_run(target, change) -> dict:
    """Applies `change` (record -> new record) to a local run.json under its lock, replacing the file atomically."""
    path = record_file(target)
    with RecordLock(path):
        record = change(parse_record(path))
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(partial, "w") as f:
            f.write(json.dumps(record, indent=2, default=str))
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    return record


def read_hub_run(repo: str, revision: str | None = None, unreadable_is_empty: bool = False) -> tuple[dict, str]:
    """The run.json of a Hub model repo ({} when it has none) and the commit it was read at."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

    try:
        head = HfApi().model_info(repo, revision=revision).sha
        path = Path(hf_hub_download(repo, RUN_FILE, revision=head))
    except RepositoryNotFoundError:
        raise BadInput(f"{repo}: no such model repo (or your token cannot read it); pass a run directory or the "
                       "repo the training pushed to.")
    except EntryNotFoundError:
        return {}, head
    except (HfHubHTTPError, OSError) as error:
        raise BadInput(f"{repo}: the Hub could not be reached ({error.__class__.__name__}); pass a local run "
                       "directory or go online.")
    try:
        record = json.loads(path.read_text())
        problem = None if isinstance(record, dict) else "is not a run record (a JSON object)"
    except (ValueError, UnicodeDecodeError):
        problem = "is not valid JSON"
    if problem and unreadable_is_empty:
        import sys

        print(f"warning: {RUN_FILE} in {repo} {problem}; replacing it with this run's record.", file=sys.stderr)
        return {}, head
    if problem:
        raise BadInput(f"{RUN_FILE} in {repo} {problem}; fix it in the repo before recording into it.")
    return record, head


def update_hub_run(repo: str, change, message: str, revision: str | None = None,
                   unreadable_is_empty: bool = False) -> dict:
    """Applies `change` to the repo's run.json in one commit on the head it read: when another writer committed
    first, the Hub refuses (412/409) and the change is applied again to the new head."""
    import random
    import sys
    import time

    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    for attempt in range(1, HUB_ATTEMPTS + 1):
        record, head = read_hub_run(repo, revision, unreadable_is_empty)
        record = change(record)
        try:
            HfApi().create_commit(repo, [CommitOperationAdd(RUN_FILE, json.dumps(record, indent=2, default=str)
                                                            .encode())],
                                  commit_message=message, parent_commit=head, revision=revision)
            return record
        except HfHubHTTPError as error:
            if error.response is None or error.response.status_code not in (409, 412) or attempt == HUB_ATTEMPTS:
                raise
            print(f"{repo} changed while recording; merging again on its new head ({attempt}/{HUB_ATTEMPTS})",
                  file=sys.stderr, flush=True)
            time.sleep(random.uniform(0, 0.2 * attempt))

