"""jobs.py --nodes N: one group for the person (local process groups, or HF Jobs in one network group), a real
torch.distributed rendezvous from the env jobs.py sets, a dying node stopping the group; and GRPO health in status."""

import json
import os
import re
import signal
import sys
from pathlib import Path

from conftest import SAMPLE, SCRIPTS, alive, json_output, wait_for
from hub_server import TOKEN

LOGS = Path(__file__).parent / "data" / "failure_logs"
# What the trainer core does with the multi-node env: torch.distributed.run on every node, the main node's address
# from HFLT_MAIN_ADDRESS or the network group's alias. The worker all-reduces rank + 1 over gloo.
PROBE = """import json, os, subprocess, sys
if sys.argv[1:] == ["worker"]:
    import torch
    import torch.distributed as dist
    dist.init_process_group("gloo")
    total = torch.tensor([dist.get_rank() + 1.0])
    dist.all_reduce(total)
    if dist.get_rank() == 0:
        for step in (1, 2):
            print("[progress] " + json.dumps({"step": step, "total_steps": 2, "loss": 1.0 / step}), flush=True)
    print("allreduce", int(total.item()), flush=True)
    dist.destroy_process_group()
    sys.exit(0)
print("[env] " + json.dumps({k: v for k, v in os.environ.items() if k.startswith(("HFLT_", "JOB_ID"))}), flush=True)
main = os.environ.get("HFLT_MAIN_ADDRESS") or os.environ["HF_NETWORK_GROUP_PREFIX"] + "main"
sys.exit(subprocess.call([sys.executable, "-m", "torch.distributed.run", "--nnodes", os.environ["HFLT_NUM_NODES"],
                          "--node_rank", os.environ["HFLT_NODE_RANK"], "--master_addr", main,
                          "--master_port", os.environ["HFLT_MAIN_PORT"], "--nproc_per_node", "1", __file__, "worker"]))
"""
SLEEPER = """import json, os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("pids", os.getpid(), child.pid, flush=True)
for step in range(1, 10000):
    print("[progress] " + json.dumps({"step": step, "total_steps": 10000, "loss": 1.0, "time": time.time()}), flush=True)
    time.sleep(0.3)
"""


def node_pids(jobs, job_id) -> list[int]:
    """The pids each node's sleeper printed (its own and its child's), once every node has started."""
    def printed():
        lines = [line for line in jobs("logs", job_id).stdout.splitlines() if " pids " in line]
        return lines if len(lines) == 2 else None

    return [[int(pid) for pid in line.split()[-2:]] for line in sorted(wait_for(printed))]


def envs(merged_log: str) -> dict[int, dict]:
    return {int(rank): json.loads(env) for rank, env in re.findall(r"^\[node (\d+)\] \[env\] (.*)$", merged_log, re.M)}


def test_local_group_rendezvous_env_logs_and_status(jobs, tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    submitted = jobs("submit", "--backend", "local", "--nodes", "2", "--timeout", "5m", "--", probe)
    assert submitted.returncode == 0 and "Job group submitted: 2 nodes." in submitted.stdout, submitted.output
    group = next(line.split()[-1] for line in submitted.stdout.splitlines() if line.startswith("Job ID: "))
    waited = jobs("wait", group)
    assert waited.returncode == 0, jobs("logs", group).stdout[-3000:]
    info = json_output(jobs("status", group, "--json"))
    assert info["stage"] == "COMPLETED" and info["nodes"] == 2 and info["step"] == 2 and info["diagnosis"] is None
    merged = jobs("logs", group).stdout
    assert "[node 0] allreduce 3" in merged and "[node 1] allreduce 3" in merged, merged
    seen = envs(merged)
    port = seen[0]["HFLT_MAIN_PORT"]
    for rank in (0, 1):
        expected = {"HFLT_NUM_NODES": "2", "HFLT_NODE_RANK": str(rank), "HFLT_MAIN_ADDRESS": "127.0.0.1",
                    "HFLT_MAIN_PORT": port, "HFLT_FLAVOR": "local", "JOB_ID": group, "HFLT_JOB_ID": group,
                    "HFLT_JOB_URL": seen[0]["HFLT_JOB_URL"]}
        assert expected.items() <= seen[rank].items(), seen[rank]
    only = jobs("logs", group, "--node", "1").stdout
    assert "allreduce 3" in only and "[node" not in only and '"HFLT_NODE_RANK": "1"' in only
    bad = jobs("logs", group, "--node", "2")
    assert bad.returncode == 2 and "has 2 node(s)" in bad.stderr


def test_a_dying_node_stops_the_group_and_status_names_it(jobs, tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    group = json_output(jobs("submit", "--backend", "local", "--nodes", "2", "--json", "--", script))["id"]
    (node0, child0), (node1, child1) = node_pids(jobs, group)
    os.kill(node1, signal.SIGKILL)
    info = wait_for(lambda: (i := json_output(jobs("status", group, "--json")))["stage"] != "RUNNING" and i)
    assert info["stage"] == "ERROR" and info["diagnosis"]["node"] == 1 and info["diagnosis"]["kind"] == "killed"
    assert info["exit_code"] == -signal.SIGKILL
    text = jobs("status", group).stdout
    assert f"Job {group} (2 nodes) failed" in text and "node 1 stopped: the process was killed by SIGKILL" in text
    assert not any(alive(pid) for pid in (node0, child0, child1)), "nothing is left behind"
    # cancel reaches every node of a running group
    group = json_output(jobs("submit", "--backend", "local", "--nodes", "2", "--json", "--", script))["id"]
    pids = [pid for pair in node_pids(jobs, group) for pid in pair]
    cancelled = jobs("cancel", group)
    assert cancelled.stdout.startswith(f"Job {group} was cancelled.\nStopped 4 processes (pids ")
    assert json_output(jobs("status", group, "--json"))["stage"] == "CANCELED"
    assert not any(alive(pid) for pid in pids)


def test_hf_group_requests_status_logs_and_cancel(jobs, hub, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"flavor": "a10g-large", "timeout": "1h", "time_hours": 0.5, "cost_usd": 0.75,
                                "price_per_hour": 1.5}))
    submitted = jobs("submit", "--plan", plan, "--nodes", "2", "--name", "sft-pair", "--", SCRIPTS / "train_sft.py",
                     "--model_name_or_path", "m", "--dataset_name", "d", "--push_to_hub", "--hub_model_id", "tester/m")
    assert submitted.returncode == 0, submitted.output
    assert "Job group submitted: 2 nodes." in submitted.stdout
    assert "estimated cost ~$1.50 (2 x a10g-large)." in submitted.stdout
    group = next(line.split()[-1] for line in submitted.stdout.splitlines() if line.startswith("Job ID: "))
    specs = [request["json"] for request in hub.requests("POST", "/api/jobs/tester")]
    assert len(specs) == 2 and {spec["network"]["group"] for spec in specs} == {group}
    assert specs[0]["network"]["aliases"] == ["main"] and not specs[1]["network"].get("aliases")
    for rank, spec in enumerate(specs):
        assert spec["environment"] == {"HFLT_FLAVOR": "a10g-large", "HFLT_JOB_NAMESPACE": "tester",
                                       "HFLT_NUM_NODES": "2", "HFLT_NODE_RANK": str(rank), "HFLT_MAIN_PORT": "29500",
                                       "HFLT_JOB_GROUP": group}
        assert spec["labels"]["group"] == group and spec["labels"]["node"] == str(rank)
        assert spec["labels"]["name"] == "sft-pair" and spec["labels"]["timeout_s"] == "3600"
        assert spec["timeoutSeconds"] == 3600 and spec["command"] == specs[0]["command"]
        assert spec["arguments"] == specs[0]["arguments"], "every node runs the same command; its rank is in its env"
        assert spec["secrets"] == {"HF_TOKEN": TOKEN}
    ids = [next(j["id"] for j in hub.state.jobs.values() if j["labels"]["node"] == str(rank)) for rank in (0, 1)]
    first, second = (hub.state.jobs[job_id] for job_id in ids)
    first["status"] = {"stage": "RUNNING", "message": None}
    hub.state.job_logs[ids[0]] += ['[progress] {"step": 5, "total_steps": 10, "loss": 2.0, "time": 100.0}',
                                   '[progress] {"step": 7, "total_steps": 10, "loss": 1.5, "time": 160.0}']
    hub.state.job_logs[ids[1]] += ["node one says hello", (LOGS / "out_of_memory.log").read_text()]
    assert jobs("status", group).stdout.startswith(f"Job {group} (2 nodes) is scheduled."), "waiting for node 1"
    second["status"] = {"stage": "RUNNING", "message": None}
    info = json_output(jobs("status", group, "--json"))
    assert info["stage"] == "RUNNING" and info["step"] == 7 and [m["id"] for m in info["members"]] == ids
    assert info["name"] == "sft-pair" and info["timeout_s"] == 3600
    second["status"] = {"stage": "ERROR", "message": "Job failed with exit code: 1"}
    info = json_output(jobs("status", group, "--json"))
    assert info["stage"] == "ERROR" and info["diagnosis"]["node"] == 1 and info["diagnosis"]["kind"] == "out_of_memory"
    assert "What went wrong: node 1 stopped: the GPU ran out of memory." in jobs("status", group).stdout
    merged = jobs("logs", group).stdout.splitlines()
    assert merged[0].startswith("[node 0] [progress]") and "[node 1] node one says hello" in merged
    assert jobs("logs", group, "--node", "1").stdout.startswith("node one says hello")
    listed = [job for job in json_output(jobs("list", "--json")) if job["backend"] == "hf"]
    assert [(job["id"], job["name"], job["nodes"], job["stage"]) for job in listed] == [(group, "sft-pair", 2, "ERROR")]
    second["status"] = {"stage": "RUNNING", "message": None}
    assert "was cancelled" in jobs("cancel", group).stdout
    assert first["status"]["stage"] == second["status"]["stage"] == "CANCELED"
    assert len(hub.requests("POST", "*/cancel")) == 2


def test_hf_group_really_meets_through_its_network_alias(jobs, tmp_path, env):
    """Both members run (the loopback runner), find node 0 at ${HF_NETWORK_GROUP_PREFIX}main and all-reduce."""
    sys.path.insert(0, str(SCRIPTS))
    import plan
    from hub_server import LoopbackHub

    server = LoopbackHub(plan.catalogue_as_api(), run_jobs=True)
    try:
        env.pop("HF_HUB_OFFLINE")
        env.update(HF_ENDPOINT=server.endpoint, HF_TOKEN=TOKEN)
        probe = tmp_path / "probe.py"
        probe.write_text(PROBE)
        group = json_output(jobs("submit", "--flavor", "cpu-basic", "--nodes", "2", "--timeout", "5m", "--json", "--",
                                 probe))["id"]
        waited = jobs("wait", group)
        merged = jobs("logs", group).stdout
        assert waited.returncode == 0, merged[-3000:]
        assert "[node 0] allreduce 3" in merged and "[node 1] allreduce 3" in merged
        assert json_output(jobs("status", group, "--json"))["step"] == 2
    finally:
        server.close()


GRPO_STEP = {"loss": 0.0, "learning_rate": 1e-6, "reward_std": 0.0, "completions/mean_length": 256.0}


def grpo_lines(rewards, clipped):
    return ["[progress] " + json.dumps({"step": step, "total_steps": 100, "time": 10.0 * step, **GRPO_STEP,
                                        "reward": reward, "completions/clipped_ratio": ratio})
            for step, (reward, ratio) in enumerate(zip(rewards, clipped), start=1)]


def test_grpo_health_from_its_logged_metrics(jobs, hub):
    submitted = json_output(jobs("submit", "--flavor", "a100-large", "--timeout", "2h", "--json", "--",
                                 SCRIPTS / "validate_dataset.py", "--dataset", "a/b"))
    job_id = submitted["id"]
    hub.state.jobs[job_id]["status"] = {"stage": "RUNNING", "message": None}
    hub.state.job_logs[job_id] += grpo_lines([0.0] * 4, [0.9, 0.95, 1.0, 1.0])
    info = json_output(jobs("status", job_id, "--json"))
    assert [h["kind"] for h in info["health"]] == ["reward_flat_zero", "completions_clipped"]
    text = jobs("status", job_id).stdout
    assert "reward 0 (from 0)" in text and "Completions: 256 tokens on average, 100% cut at the length limit." in text
    assert "check the reward function and the answer format" in text and "raise --max_completion_length" in text
    hub.state.job_logs[job_id] += grpo_lines([0.1, 0.3, 0.5, 0.7], [0.2, 0.1, 0.05, 0.0])
    info = json_output(jobs("status", job_id, "--json"))
    assert info["health"] == [] and info["reward"] == 0.7 and info["reward_start"] == 0.0
    assert "Check:" not in jobs("status", job_id).stdout


def test_real_tiny_grpo_job_is_diagnosed(jobs, tiny_model, tmp_path):
    """A random tiny model never says the number nor stops within 8 tokens: both checks fire on a real run."""
    submitted = json_output(jobs(
        "submit", "--backend", "local", "--json", "--", SCRIPTS / "train_grpo.py", "--model_name_or_path", tiny_model,
        "--dataset_name", SAMPLE / "grpo_math.jsonl", "--convert", "gsm8k", "--reward_funcs", "number_match",
        "--output_dir", tmp_path / "grpo", "--max_steps", "3", "--num_generations", "4", "--max_completion_length",
        "8", "--per_device_train_batch_size", "4", "--logging_steps", "1", "--report_to", "none"))
    waited = jobs("wait", submitted["id"])
    assert waited.returncode == 0, jobs("logs", submitted["id"], "--tail", "40").stdout
    info = json_output(jobs("status", submitted["id"], "--json"))
    assert info["reward"] == 0 and info["clipped_ratio"] == 1.0
    assert {h["kind"] for h in info["health"]} == {"reward_flat_zero", "completions_clipped"}
