"""report.py reads run records as untrusted input (teammates' directories, other people's Hub repos): hostile text
stays inert Markdown, links go only to the Hub endpoint in use, its markers cannot be forged, hand notes survive,
and every record it cannot read is one line while the rest of the report is written."""

import json
import re
from pathlib import Path

from test_report import fixture_run, humaneval

ENDPOINT = "https://hub.example.org"
MARKER = re.compile(r"<!-- hflt:(begin|end) [^<>]* -->")
LINK = re.compile(r"(?<!\\)\]\(([^)]*)\)")  # a link's target: after an unescaped ]

MALFORMED = {  # name -> (how the record is broken, what the report says about it)
    "string-score": (lambda r: r["evaluations"][0].update(score="0.5"), "evaluations[0].score is text, not a number"),
    "no-benchmark": (lambda r: r["evaluations"][0].pop("benchmark"), "evaluations[0] has no benchmark"),
    "dict-evaluations": (lambda r: r.update(evaluations={"humaneval": 0.5}), "evaluations is an object, not a list"),
    "list-config": (lambda r: r.update(config=[1, 2]), "config is a list, not an object"),
    "string-gpus": (lambda r: r["hardware"].update(gpus="2"), "hardware.gpus is text, not a number"),
    "string-trackio": (lambda r: r.update(trackio="alice/trackio"), "trackio is text, not an object"),
    "string-eval-ratio": (lambda r: r["dataset"].update(eval_ratio="5%"), "dataset.eval_ratio is text, not a number"),
    "string-share": (lambda r: r["evaluations"][0].update(per_problem={"HumanEval/0": "1"}),
                     "evaluations[0].per_problem.HumanEval/0 is text, not a number"),
    "share-above-one": (lambda r: r["evaluations"][0].update(per_problem={"HumanEval/0": 3}),
                        "evaluations[0].per_problem holds a share outside 0-1"),
    "three-bounds": (lambda r: r["evaluations"][0].update({"pass@1_ci95": [0.1, 0.2, 0.3]}),
                     "evaluations[0].pass@1_ci95 is not [low, high]"),
    "list-protocol": (lambda r: r["evaluations"][0].update(protocol=["greedy"]),
                      "evaluations[0].protocol is a list, not an object"),
    "contamination-no-benchmark": (lambda r: r.update(contamination={"ngram": 13}), "contamination has no benchmark"),
    "string-export-size": (lambda r: r.update(exports=[{"file": "x.gguf", "size_mb": "5"}]),
                           "exports[0].size_mb is text, not a number"),
}
NOT_RECORDS = {"not-an-object": ("[1, 2]", "it is a list, not an object"),
               "invalid-json": ('{"method": "sft", "base_model": ', "not valid JSON")}


def hostile_run(tmp_path: Path) -> Path:
    out = fixture_run(tmp_path, "hostile", "sft", 0.5)
    record = json.loads((out / "run.json").read_text())
    record |= {
        "base_model": "<script>alert(1)</script>",
        "method": "sft | injected | cells",
        "loss_masking": '<img src=x onerror="alert(1)">',
        "hub_repo": "[click](javascript:alert(3))",
        "dataset": record["dataset"] | {"name": "evil\n<!-- hflt:begin evaluations -->\n# Injected heading\n| a | b |"},
        "job": {"id": "job`id", "url": "javascript:alert(2)"},
        "trackio": {"project": "p <b>", "run": "hostile", "space": "x/y) [click](javascript:alert(5)"},
        "evaluations": [{"benchmark": "humaneval<script>", "score": 0.5, "date": "<b>bold</b>",
                         "job": "https://evil.example/jobs/x", "model": "[m](javascript:alert(4))",
                         "protocol": {"<b>|key": 1}, "revision": "`rev|<b>`", "per_problem": {"<i>|t": 1.0}},
                        {"benchmark": "humaneval", "score": 0.4, "job": f"{ENDPOINT}.evil.example/jobs/y",
                         "model": "www.evil.example/a/b", "limit": 2, "n": 2, "of": 164,
                         "pass@1_ci95": [0.1, 0.9], "per_problem": {"<i>|t": 1.0, "[x](javascript:1)": 0.0}},
                        {"benchmark": "humaneval<script>", "score": 0.3, "model": "<script>alert(1)</script>",
                         "protocol": {"<b>|key": 2}}],
        "contamination": {"benchmark": "humaneval", "ngram": 13, "rows_overlapping": 2, "problems_overlapping": 1,
                          "problems": ["[x](javascript:1)"]},
        "exports": [{"file": "<img src=x>|.gguf", "quant": "[q](javascript:alert(6))", "size_mb": 1.5,
                     "parity": "**agrees** <b>|", "repo": "x/y) [click](javascript:alert(7)", "date": "<b>"},
                    {"file": "y.gguf", "repo": "https://evil.example/a"}],
    }
    (out / "run.json").write_text(json.dumps(record))
    return out


def malformed_runs(tmp_path: Path) -> list[Path]:
    paths = []
    for name, (breaks, _) in MALFORMED.items():
        record = json.loads(fixture_run(tmp_path, name, "sft", 0.3).joinpath("run.json").read_text())
        breaks(record)
        (tmp_path / name / "run.json").write_text(json.dumps(record))
        paths.append(tmp_path / name)
    for name, (content, _) in NOT_RECORDS.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text(content)
        paths.append(tmp_path / name)
    return paths


def assert_inert(report: str):
    assert "<" not in MARKER.sub("", report), "no raw HTML: every < outside report.py's own markers is escaped"
    assert [target for target in LINK.findall(report)
            if not target.startswith(f"{ENDPOINT}/") and not target.endswith("-loss.png")] == []
    assert "javascript:" not in "".join(LINK.findall(report)) and "evil.example" not in "".join(LINK.findall(report))
    headings = [line for line in report.splitlines() if line.startswith("#")]
    assert all(line.startswith(("# Base model", "# Experiment", "# `", "## ")) for line in headings), headings
    for line in report.splitlines():
        if line.startswith("|"):  # every table row keeps its own cells: a pipe from a field is escaped
            assert len(re.findall(r"(?<!\\)\|", line)) in (3, 6), line


def test_hostile_and_malformed_records(tmp_path, run_script):
    out = tmp_path / "reports"
    env = {"HF_ENDPOINT": ENDPOINT}
    good = fixture_run(tmp_path, "good", "sft", 0.342)
    runs = [good, hostile_run(tmp_path), *malformed_runs(tmp_path)]
    result = run_script("report.py", "--experiment", "exp", "--runs", *runs, "--output_dir", out, "--json",
                        extra_env=env)
    assert result.returncode == 0 and "Traceback" not in result.output, result.output
    statuses = {run["name"]: run["status"] for run in json.loads(result.stdout)["runs"]}
    assert statuses["good"] == statuses["hostile"] == "Completed"
    assert {name for name, status in statuses.items() if status == "Unreadable"} == {*MALFORMED, *NOT_RECORDS}
    report = (out / "exp.md").read_text()
    assert_inert(report)
    assert report.count("unreadable record (") == len(MALFORMED) + len(NOT_RECORDS)
    for name, (_, why) in {**MALFORMED, **NOT_RECORDS}.items():
        section = report.split(f"<!-- hflt:begin run {name} -->\n")[1].split("\n<!-- hflt:end")[0]
        assert section.count("\n") == 1 and f"unreadable record ({why}" in section.replace("\\", ""), section
    assert "| `good` - `2025-12-09 16:00 UTC` - `Completed` | HumanEval pass@1 | 0.342 |" in report
    assert f"[Dataset]({ENDPOINT}/datasets/open-r1/codeforces-cots)" in report, "the Hub links are on HF_ENDPOINT"
    assert "](https://huggingface.co" not in report, "a link to another host is shown as text"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report and "evil&#58;" not in report

    # hand notes around and between the blocks survive every refresh, the forged marker in a field included
    notes = "My notes: the hostile run came from a teammate.\n"
    report = notes + report.replace("\n---\n", "\n---\nNote between blocks.\n", 1) + "\nClosing note.\n"
    table = report.rindex("<!-- hflt:begin evaluations -->")  # the forged marker in the hostile run comes earlier
    report = report[:table] + "Note before the table.\n\n" + report[table:]
    (out / "exp.md").write_text(report)
    refreshed = run_script("report.py", "--experiment", "exp", "--out", out, extra_env=env)
    assert refreshed.returncode == 0, refreshed.output
    text = (out / "exp.md").read_text()
    assert text == report, "a refresh with nothing new changes nothing, notes included"
    assert_inert(text)


def test_links_only_to_the_endpoint_in_use(tmp_path, run_script):
    """The fixture's links name https://huggingface.co; with another HF_ENDPOINT they are shown as text."""
    out = tmp_path / "reports"
    run = fixture_run(tmp_path, "sft", "sft", 0.342)
    result = run_script("report.py", "--experiment", "exp", "--runs", run, "--output_dir", out,
                        extra_env={"HF_ENDPOINT": ENDPOINT})
    assert result.returncode == 0, result.output
    report = (out / "exp.md").read_text()
    assert "](https://huggingface.co" not in report and "| [logs](" not in report
    assert f"[Base Model]({ENDPOINT}/Qwen/Qwen3-0.6B)" in report
    assert f"({ENDPOINT}/spaces/alice/trackio?project=qwen3-codeforces&runs=sft)" in report


def every_path(value, path=()):
    """The path of every field of a record, containers and leaves alike (the first entry of each list)."""
    yield path
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from every_path(inner, (*path, key))
    elif isinstance(value, list) and value:
        yield from every_path(value[0], (*path, 0))


def test_any_field_of_any_type_is_shown_or_one_unreadable_line(tmp_path, run_script):
    """Every field of a real record replaced by every JSON type: the report is written (exit 0, no traceback), and
    each record is either shown or one "unreadable record" line."""
    record = json.loads(fixture_run(tmp_path, "base", "sft", 0.3).joinpath("run.json").read_text())
    record["method"] = "grpo"  # its rewards are read too
    record["log_history"] = record["log_history"][:1] + [{"step": 1, "reward": 0.5, "rewards/code_tests/mean": 0.5}]
    record["evaluations"] = [humaneval({0}, limit=2, of=164) | {"protocol": {"max_new_tokens": 384}},  # the fuzzed
                             humaneval({1}, limit=2, model=record["base_model"])]  # its baseline, left as it is
    record["contamination"] = {"benchmark": "humaneval", "ngram": 13, "rows_checked": 9, "rows_overlapping": 1,
                               "rows_dropped": 0, "problems_overlapping": 1, "problems": ["HumanEval/0"]}
    record["exports"] = [{"file": "m.gguf", "quant": "Q8_0", "size_mb": 1.5, "parity": "identical (4/4 greedy tokens)",
                          "golden_agree": "4/4", "repo": "alice/m-GGUF", "date": "2025-12-10T09:00:00Z"}]
    runs = []
    for path in list(every_path(record))[1:]:
        for index, wrong in enumerate(["x", 7, 2.5, True, [1], {"a": 1}]):
            broken = json.loads(json.dumps(record)) | {"job": {"id": f"job-{len(runs)}"}, "trackio": None}
            broken |= {key: record[key] for key in ("job", "trackio") if path[0] == key}
            broken["log_history"] = broken["log_history"] if path[0] == "log_history" else []  # fewer plots
            *parents, last = path
            target = broken
            for key in parents:
                target = target[key]
            target[last] = wrong
            out = tmp_path / "runs" / f"{'.'.join(map(str, path))}-{index}"
            out.mkdir(parents=True)
            (out / "run.json").write_text(json.dumps(broken))
            runs.append(out)
    result = run_script("report.py", "--experiment", "fuzz", "--runs", *runs, "--output_dir", tmp_path / "reports",
                        "--json", extra_env={"HF_ENDPOINT": ENDPOINT})
    assert result.returncode == 0 and "Traceback" not in result.output, result.output[-3000:]
    statuses = [run["status"] for run in json.loads(result.stdout)["runs"]]
    assert len(statuses) == len(runs) and set(statuses) <= {"Completed", "Unreadable", "Failed", "In progress"}
    report = (tmp_path / "reports" / "fuzz.md").read_text()
    assert report.count("unreadable record (") == statuses.count("Unreadable") > 0
    assert_inert(report)
