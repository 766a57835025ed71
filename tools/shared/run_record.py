"""run.json: the record of one training run, which evaluations and GGUF exports append to."""

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from errors import BadInput


def utcnow() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
