"""What the benchmark evaluations (eval_humaneval.py, eval_gsm8k.py) share: the model lighteval loads (a Hub id, a
local directory, a pushed checkpoint, a LoRA adapter merged into its base), checked before anything heavy loads;
lighteval's Pipeline run on given task configs; the libraries' noise kept out of the answer; the 95% Wilson interval;
and the run.json an evaluation is recorded into."""

import contextlib
import json
import math
import os
import sys
from pathlib import Path

from .errors import BadInput, Failure, first_line
from .models import adapter_base, check_weights, save_merged
from .run_record import append_to_run, locate_run

# A pushed checkpoint folder holds optimizer and scheduler states that evaluation does not need.
NOT_FOR_EVALUATION = ["optimizer.pt", "scheduler.pt", "rng_state*.pth", "*/optimizer.pt", "*/scheduler.pt",
                      "*/rng_state*.pth"]
PROGRESS = sys.stderr  # our [eval] lines; the libraries' output may be sent elsewhere (quiet_libraries)


def progress(message: str):
    print(message, file=PROGRESS, flush=True)


@contextlib.contextmanager
def quiet_libraries(log_file: Path):
    """Outside a job, the libraries' progress bars and warnings (tqdm, logging and C code alike write to file
    descriptor 2) go to a log file rather than the answer; our [eval] lines keep the terminal. Its end is shown
    when the evaluation fails. In a job, everything stays in the job's log (jobs.py status reads through it)."""
    global PROGRESS
    if os.environ.get("JOB_ID"):
        yield
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    PROGRESS = os.fdopen(os.dup(terminal), "w")
    with open(log_file, "w") as noise:
        os.dup2(noise.fileno(), 2)
        try:
            yield
        except Exception:
            sys.stderr.flush()
            progress("[eval] the end of the libraries' output:\n" + "\n".join(log_file.read_text(errors="replace").splitlines()[-20:]))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(terminal, 2)
            os.close(terminal)
            PROGRESS.close()
            PROGRESS = sys.stderr


def read_jsonl(path: str, keys: tuple[str, ...]) -> list[str]:
    """The non-empty lines of a JSONL file whose objects all carry `keys`."""
    try:
        lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"{path} could not be read ({error.__class__.__name__}); pass a JSONL file.")
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict) or not all(isinstance(row.get(key), str) for key in keys):
            raise BadInput(f"Line {number} of {path} is not a JSON object with string fields {', '.join(keys)}.")
    if not lines:
        raise BadInput(f"{path} is empty; it needs one JSON object a line.")
    return lines


# ---------------------------------------------------------------- the model


def check_hub_id(model: str):
    """A Hub model id that is malformed, does not exist, or (offline) is not in the cache is one sentence now, before
    anything heavy loads."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(model)
    except HFValidationError:
        raise BadInput(f"--model {model!r} is neither a local directory nor a Hub model id (owner/name).")
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    unreachable = False
    for name in ("config.json", "adapter_config.json"):
        try:
            hf_hub_download(model, name)
            return
        except RepositoryNotFoundError:
            raise BadInput(f"--model {model}: no such model repo on the Hub (or your token cannot read it); check the "
                           "spelling, or pass a local model directory.")
        except RevisionNotFoundError:
            return  # the checkpoint is elsewhere (--revision); local_checkpoint checks that one
        except LocalEntryNotFoundError:
            unreachable = True  # offline, or the Hub out of reach: maybe the other file is cached
            continue
        except EntryNotFoundError:
            continue  # the repo exists without this file
        except (HfHubHTTPError, OSError) as error:
            raise BadInput(f"--model {model}: the Hub could not be reached ({error.__class__.__name__}); go online "
                           "or pass a local model directory.")
    if offline or unreachable:
        why = "HF_HUB_OFFLINE=1" if offline else "the Hub could not be reached"
        raise BadInput(f"--model {model}: no config.json or adapter_config.json in the local cache ({why}); "
                       "download the model while online, or pass a local model directory.")
    raise BadInput(f"--model {model}: the repo has no config.json or adapter_config.json; pass a model repo, or "
                   "--subfolder with the checkpoint folder that holds one.")


def check_model_flag(model: str, revision: str | None, subfolder: str | None):
    """--model, checked as the flags are parsed: a Hub id now; a pushed checkpoint (--revision, --subfolder) is
    checked as it downloads, a local directory as it loads."""
    if not (Path(model).exists() or model.startswith((".", "/")) or revision or subfolder):
        check_hub_id(model)


def local_checkpoint(model: str, revision: str | None, subfolder: str | None) -> str:
    """The model lighteval loads: a pushed checkpoint (--revision, --subfolder) of a Hub repo is downloaded first."""
    if Path(model).is_dir():
        if revision:
            raise BadInput(f"--revision applies to Hub repos, and {model} is a local directory; drop --revision.")
        path = Path(model) / (subfolder or "")
    elif not revision and not subfolder:
        return model
    else:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        try:
            snapshot = snapshot_download(model, revision=revision, ignore_patterns=NOT_FOR_EVALUATION,
                                         allow_patterns=[f"{subfolder}/*"] if subfolder else None)
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as error:
            raise BadInput(f"Model {model!r} at revision {revision or 'main'} could not be downloaded "
                           f"({error.__class__.__name__}); pass an existing repo, revision and subfolder.")
        path = Path(snapshot) / (subfolder or "")
    if not (path / "config.json").exists() and not (path / "adapter_config.json").exists():
        raise BadInput(f"{model} has no model or LoRA adapter in {subfolder or 'its root'}; pass --subfolder with a "
                       "checkpoint folder (e.g. last-checkpoint or checkpoint-500).")
    return str(path)


def loadable_model(model: str, revision: str | None, subfolder: str | None, base: str | None, workdir: Path) -> str:
    """What lighteval loads (it loads full models): the checkpoint, its weights checked; a LoRA adapter (named by
    --base or by its own config) merged into its base under `workdir`."""
    path = local_checkpoint(model, revision, subfolder)
    check_weights(path)
    base = base or adapter_base(path, None if Path(path).is_dir() else revision)
    return str(save_merged(path, base, workdir / "merged")) if base else path


def generation_backend(backend: str) -> str:
    """--backend auto: vLLM when it is installed and a GPU is there, else transformers."""
    if backend != "auto":
        return backend
    import importlib.util

    import torch

    return "vllm" if torch.cuda.is_available() and importlib.util.find_spec("vllm") else "transformers"


def model_config(model: str, backend: str, temperature: float, max_new_tokens: int, batch_size: int):
    """lighteval's model, prompted as the recorded protocol says: the prompt continued as text. lighteval would
    otherwise wrap it in the tokenizer's chat template whenever it has one (and a thinking model would think)."""
    import torch
    from lighteval.models.model_input import GenerationParameters

    generation = GenerationParameters(temperature=temperature, max_new_tokens=max_new_tokens,
                                      top_p=0.95 if temperature > 0 else None)
    if backend == "vllm":
        from lighteval.models.vllm.vllm_model import VLLMModelConfig

        return VLLMModelConfig(model_name=model, generation_parameters=generation, override_chat_template=False)
    from lighteval.models.transformers.transformers_model import TransformersModelConfig
    from transformers import GenerationConfig

    on_gpu = torch.cuda.is_available()
    # lighteval passes the temperature but leaves do_sample to the model's generation config
    loading = {"generation_config": GenerationConfig.from_pretrained(model, do_sample=temperature > 0)}
    return TransformersModelConfig(model_name=model, device="cuda" if on_gpu else "cpu", batch_size=batch_size,
                                   dtype="bfloat16" if on_gpu else "float32", generation_parameters=generation,
                                   model_loading_kwargs=loading, override_chat_template=False)


# ---------------------------------------------------------------- lighteval


def run_lighteval(tasks: list, spec: str, config, workdir: Path, max_samples: int | None = None):
    """lighteval's Pipeline on `spec` (`name|shots`) over the given task configs; the pipeline, evaluated (its
    get_results, get_details and tasks_dict hold what it did)."""
    from lighteval.logging.evaluation_tracker import EvaluationTracker
    from lighteval.pipeline import ParallelismManager, Pipeline, PipelineParameters
    from lighteval.tasks.registry import Registry

    # lighteval 0.13 builds its registry by importing every built-in task module; offline two of them fail at
    # import (tiny_benchmarks downloads from GitHub, mt_bench calls a list_models() argument huggingface_hub 2.x
    # removed). Only the tasks given are needed, so the registry is built from them alone (Pipeline takes no
    # registry).
    Registry.load_all_task_configs = staticmethod(
        lambda custom_tasks=None, load_multilingual=False: {task.name: task for task in tasks})
    parameters = PipelineParameters(launcher_type=ParallelismManager.NONE, max_samples=max_samples)
    pipeline = Pipeline(tasks=spec, pipeline_parameters=parameters, model_config=config,
                        evaluation_tracker=EvaluationTracker(output_dir=str(workdir / "lighteval")))
    pipeline.evaluate()
    return pipeline


# ---------------------------------------------------------------- how sure the score is


def wilson_interval(passed: float, n: int, z: float = 1.959964) -> list[float]:
    """The 95% Wilson score interval of a proportion passed/n: valid near 0 and 1 and for small n, where the
    normal approximation is not."""
    if n == 0:
        return [0.0, 1.0]
    p = passed / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, center - half), 4), round(min(1.0, center + half), 4)]


# ---------------------------------------------------------------- where the result is recorded


def checked_run(target: str) -> str:
    """The run --run names (a local run directory or a Hub model repo with a run.json), checked before anything is
    evaluated."""
    found = locate_run(target, "--run")
    if found is None:
        raise BadInput(f"--run {target} has no run.json; pass the output directory of a training run or the Hub repo "
                       "it pushed to.")
    return found


def record_evaluation(target: str, entry: dict, message: str):
    """Appends one evaluation entry to the run's run.json (a merge: concurrent writers keep each other's entries)."""
    try:
        append_to_run(target, append={"evaluations": [entry]}, message=message)
    except Exception as error:  # noqa: BLE001 - the score is printed above: say that it was not recorded
        raise Failure(f"the result above could not be recorded in {target} ({first_line(error)}); fix that and "
                      "record it again (--save_samples keeps the completions to re-score with --completions).")
    progress(f"[eval] recorded in {target}/run.json")
