"""run.json: the record of one training run, which evaluations and GGUF exports append to."""

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from .errors import BadInput


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


def read_run_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        raise BadInput(f"{path} is not valid JSON; restore it (or move it away) and run again.")
    if not isinstance(record, dict):
        raise BadInput(f"{path} is not a run record (a JSON object); restore it (or move it away) and run again.")
    return record


def update_run_record(directory, fields: dict, append: dict | None = None) -> dict:
    """Merges `fields` into <directory>/run.json and appends `append`'s entries to its lists, atomically: a reader
    never sees half a file, and what evaluations and exports appended is kept."""
    target = Path(directory) / "run.json"
    record = read_run_record(target) | fields
    for key, entries in (append or {}).items():
        record[key] = record.get(key, []) + entries
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".run.json.{os.getpid()}.tmp")
    partial.write_text(json.dumps(record, indent=2, default=str))
    os.replace(partial, target)
    return record


def hub_run_record(repo: str) -> tuple[dict, str]:
    """The run.json of a Hub model repo ({} when it has none) and the commit it was read at."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

    try:
        head = HfApi().model_info(repo).sha
        path = Path(hf_hub_download(repo, "run.json", revision=head))
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
    except ValueError:
        raise BadInput(f"run.json in {repo} is not valid JSON; fix it in the repo before recording into it.")
    if not isinstance(record, dict):
        raise BadInput(f"run.json in {repo} is not a run record (a JSON object); fix it in the repo first.")
    return record, head


def append_to_hub_run_record(repo: str, key: str, entries: list[dict], message: str, attempts: int = 5):
    """Appends `entries` to the list `key` of the repo's run.json in one commit on top of the head it read: when
    another writer committed first, the Hub refuses (412/409) and they are appended again to the new head."""
    import sys

    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    for attempt in range(1, attempts + 1):
        record, head = hub_run_record(repo)
        record[key] = record.get(key, []) + entries
        try:
            HfApi().create_commit(repo, [CommitOperationAdd("run.json", json.dumps(record, indent=2).encode())],
                                  commit_message=message, parent_commit=head)
            return
        except HfHubHTTPError as error:
            if error.response is None or error.response.status_code not in (409, 412) or attempt == attempts:
                raise
            print(f"{repo} changed while recording; appending again to its new head ({attempt}/{attempts})",
                  file=sys.stderr, flush=True)
