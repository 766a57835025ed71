"""Loading and reshaping training data, the same in validate_dataset.py and the trainers, so that the flags the
validator prints are the flags the trainer applies."""

import json
import re
import sys
from pathlib import Path

from .errors import BadInput, first_line

CONVERSIONS = ("sharegpt", "alpaca", "gsm8k")
ROLES = ("system", "user", "assistant", "tool")
ROLE_NAMES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
              "bot": "assistant", "system": "system", "tool": "tool"}
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".arrow": "arrow"}


WHOLE_FILE_BYTES = 1 << 30  # a local JSONL file up to this size is loaded whole even for a sample: a bad line anywhere is found
SHAPES_KEPT = 100  # rows after a sample whose missing columns the sample never showed, kept so that the checks see them
STOPPED_AT_LIMIT = ("length", "max_tokens", "max_length", "max_new_tokens")  # finish/stop reasons of a cut generation
REASON_COLUMNS = ("finish_reason", "stop_reason")
GENERATED_TEXT_COLUMNS = ("completion", "generation", "response", "output", "chosen")


def open_rows(name: str, config: str | None = None, split: str = "train", limit: int | None = None):
    """The one reader of rows: validate_dataset.py judges and the trainers train on what this returns, so a dataset
    the validator calls READY is one the trainer opens. `name` is a local file (its format from its suffix, in any
    case), a saved dataset, a folder of data files or a Hub dataset id with its configuration.

    Returns (rows, total): with `limit` None, a datasets.Dataset of every row; with a limit, a list of the first
    `limit` rows as dicts (images as stored, undecoded), read without loading the whole dataset where it is large (Hub
    datasets stream, parquet is read lazily), plus the rows of other shapes found after them. `total`: the split's
    row count, None where only a full read would tell."""
    import datasets

    # a row that does not parse is one sentence below, not logged lines too
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    path = Path(name)
    try:
        if path.is_file():
            return _open_file(path, config, split, limit)
        if path.is_dir():
            if config:
                raise BadInput(f"{name} is a local directory: it has no configurations; drop --dataset_config.")
            return _open_dir(path, split, limit)
        if name.startswith((".", "/")) or path.suffix.lower() in FILE_BUILDERS:
            raise BadInput(f"Dataset file {name} was not found: it does not exist here; check the path.")
        return _open_hub(name, config, split, limit)
    except BadInput:
        raise
    except Exception as error:  # noqa: BLE001 - whatever the library raises while reading becomes one sentence
        raise _read_error(name, config, split, error) from error


def _open_file(path: Path, config: str | None, split: str, limit: int | None):
    from datasets import load_dataset

    suffix = path.suffix.lower()
    if suffix not in FILE_BUILDERS:
        raise BadInput(f"{path} has an unsupported format ({suffix or 'no extension'}); use jsonl, json, csv, parquet "
                       "or arrow.")
    if path.stat().st_size == 0:
        raise BadInput(f"Dataset file {path} is empty; point it at a file with rows.")
    if split not in (None, "train") or config:
        raise BadInput(f"{path} is one file, which has one split, 'train', and no configuration; drop the split and "
                       "configuration flags.")
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            total = pq.ParquetFile(path).metadata.num_rows
        except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
            raise BadInput(f"{path} could not be read as parquet ({first_line(error)[:200]}); fix the file.")
    if suffix == ".jsonl" and path.stat().st_size <= WHOLE_FILE_BYTES:
        scan_jsonl(path)  # the loader would read a number in a text column as text; the line is named either way
    lazy = limit is not None and (suffix == ".parquet" or path.stat().st_size > WHOLE_FILE_BYTES)
    try:
        dataset = load_dataset(FILE_BUILDERS[suffix], data_files=str(path), split="train", streaming=lazy)
        if lazy:
            return _take(dataset, limit), total if suffix == ".parquet" else _count_lines(path)
    except BadInput:
        raise
    except Exception as error:  # noqa: BLE001 - a JSONL file says which line; the library's message otherwise
        if suffix == ".jsonl":
            scan_jsonl(path)
        raise BadInput(f"{path} could not be parsed as {suffix[1:]} ({first_line(error.__cause__ or error)[:200]}); "
                       "fix the file.")
    return _sample(dataset, limit)


def _open_dir(path: Path, split: str, limit: int | None):
    from datasets import load_dataset, load_from_disk

    if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
        dataset = load_from_disk(str(path))
        if hasattr(dataset, "keys"):
            if split not in dataset:
                raise BadInput(f"{path} has no split {split!r}; it has {', '.join(dataset)}: pass one of those.")
            dataset = dataset[split]
        return _sample(dataset, limit)
    if not any(p.suffix.lower() in FILE_BUILDERS for p in path.rglob("*") if not p.name.startswith(".")):
        raise BadInput(f"{path} holds no jsonl, json, csv, parquet or arrow files.")
    return _sample(load_dataset(str(path), split=split), limit)


def _open_hub(name: str, config: str | None, split: str, limit: int | None):
    from datasets import load_dataset

    dataset = load_dataset(name, config, split=split, streaming=limit is not None)
    if limit is None:
        return dataset, len(dataset)
    info = getattr(dataset, "info", None)
    total = info.splits[split].num_examples if info is not None and info.splits and split in info.splits else None
    rows = _take(dataset, limit)
    return rows, (total or None) if len(rows) == limit else len(rows)


def _take(stream, limit: int) -> list[dict]:
    import itertools

    return list(itertools.islice(stream.decode(False), limit))  # images as stored (bytes or path): checked, not decoded


def _sample(dataset, limit: int | None):
    """Every row (a Dataset), or the first `limit` rows as dicts plus the first rows after them whose missing
    columns the sample never showed (a schema change at row 50,000 still reaches the checks)."""
    if limit is None:
        return dataset, len(dataset)
    import pyarrow.compute as pc

    rows = dataset.select(range(min(limit, len(dataset)))).to_list()
    if len(dataset) > limit:
        table = dataset.with_format("arrow")[:]
        shapes = [0] * len(table)
        for bit, column in enumerate(table.columns):
            for index in pc.indices_nonzero(pc.is_null(column)).to_pylist():
                shapes[index] |= 1 << bit
        seen, extra = set(shapes[:limit]), []
        for index in range(limit, len(shapes)):
            if shapes[index] not in seen and len(extra) < SHAPES_KEPT:
                seen.add(shapes[index])
                extra.append(index)
        rows += dataset.select(extra).to_list() if extra else []
    return rows, len(dataset)


def _count_lines(path: Path) -> int:
    count, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


JSON_KINDS = {str: "text", int: "a number", float: "a number", bool: "a boolean", list: "a list", dict: "an object"}


def scan_jsonl(path: Path):
    """Names the first line of a JSONL file that cannot load: not JSON, not an object, or a column whose type
    changes from the line that set it (a column holding text in one row and a number in another cannot load)."""
    kinds = {}
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise BadInput(f"{path} line {number} is not valid JSON; fix or remove that line.")
            if not isinstance(row, dict):
                raise BadInput(f"{path} line {number} is not a JSON object; write one object with named columns per "
                               "line.")
            for key, value in row.items():
                kind = JSON_KINDS.get(type(value))
                first = kinds.get(key)
                if first is None and kind:
                    kinds[key] = (kind, number)
                elif kind and kind != first[0]:
                    raise BadInput(f"{path}: '{key}' holds {first[0]} on line {first[1]} but {kind} on line {number}; "
                                   "every row needs the same type in a column.")


def _read_error(name: str, config: str | None, split: str, error: Exception) -> BadInput:
    """What went wrong reading `name`, as one sentence with the flag that fixes it."""
    from datasets.exceptions import DatasetGenerationError

    message = str(error)
    if isinstance(error, ConnectionError) or "offline" in message.lower():
        return BadInput(f"The Hub could not be reached for {name!r} ({first_line(error)[:200]}); check the network, "
                        "or pass a local file.")
    if isinstance(error, DatasetGenerationError):  # a line that does not parse, a column whose type changes
        return BadInput(f"Dataset {name!r} could not be read ({first_line(error.__cause__ or error)[:300]}); fix "
                        "that row (validate_dataset.py names its line).")
    if isinstance(error, FileNotFoundError):
        return BadInput(f"Dataset {name!r} was not found on the Hub or locally ({first_line(error)[:200]}); check "
                        "the id or the path.")
    if isinstance(error, ValueError) and ("config" in message.lower()):
        names = config_names(name, message)
        listed = ", ".join(names) if names else "see the dataset card"
        if config:
            return BadInput(f"Dataset {name!r} has no configuration {config!r} (it has {listed}); pass one of "
                            "them with --dataset_config NAME.")
        return BadInput(f"Dataset {name!r} has {len(names) or 'several'} configurations and no default ({listed}); "
                        f"pick one with --dataset_config NAME, e.g. --dataset_config {names[0] if names else 'NAME'}.")
    if isinstance(error, ValueError) and "split" in message.lower():
        found = re.findall(r"'([^']+)'", message.split("vailable", 1)[-1]) if "vailable" in message else []
        return BadInput(f"Dataset {name!r} has no split {split!r}" + (f"; it has {', '.join(found)}" if found else "")
                        + ": pass an existing split.")
    if isinstance(error, OSError) and ".parquet" in name.lower():
        return BadInput(f"{name} could not be read as parquet ({first_line(error)[:200]}); fix the file.")
    return BadInput(f"Dataset {name!r} could not be read ({first_line(error)[:300]}); fix or replace it.")


def config_names(name: str, message: str = "") -> list[str]:
    """Every configuration of Hub dataset `name`: from the library, else from its error message."""
    try:
        from datasets import get_dataset_config_names

        return list(get_dataset_config_names(name))
    except Exception:  # noqa: BLE001 - the error message lists them too
        found = re.search(r"\[([^\]]*)\]", message)
        return re.findall(r"'([^']+)'", found.group(1)) if found else []


def parse_map(spec: str | None) -> dict[str, str]:
    mapping = {}
    for pair in filter(None, (spec or "").split(",")):
        new, sep, old = pair.partition("=")
        if not sep or not new.strip() or not old.strip():
            raise BadInput(f"--map takes 'new=old' pairs separated by commas, got {pair!r}.")
        mapping[new.strip()] = old.strip()
    return mapping


def sharegpt_to_messages(row):
    turns = row["conversations"]
    roles = [turn.get("from", turn.get("role")) for turn in turns]
    return {"messages": [{"role": ROLE_NAMES.get(role, role), "content": turn.get("value", turn.get("content"))}
                         for role, turn in zip(roles, turns)]}


def alpaca_to_messages(row):
    prompt = row["instruction"] if not row.get("input") else f"{row['instruction']}\n\n{row['input']}"
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": row["output"]}]}


def gsm8k_to_prompt(row):
    return {"prompt": [{"role": "user", "content": row["question"]}],
            "solution": row["answer"].split("####")[-1].strip().replace(",", "")}


def gsm8k_final_answer(answer) -> str | None:
    """The number after the last '####' of a GSM8K answer ('... #### 1,234' -> '1234'); None when there is none."""
    head, mark, tail = str(answer if answer is not None else "").rpartition("####")
    number = tail.strip().replace(",", "")
    return number if mark and re.fullmatch(r"[-+]?\d+(\.\d+)?", number) else None


def check_gsm8k_answers(dataset):
    """--convert gsm8k takes the number after '####' as the solution the rewards compare with; answers without one
    would make the whole answer text the solution, which no completion matches: every reward 0, and training runs on
    teaching nothing. Most of the checked rows without one is refused (a few are left to score 0)."""
    answers = dataset.select(range(min(CHECKED_ROWS, len(dataset))))["answer"]
    lacking = [index for index, answer in enumerate(answers) if gsm8k_final_answer(answer) is None]
    if answers and len(lacking) * 2 > len(answers):
        example = " ".join(str(answers[lacking[0]] or "").split())[:60]
        raise BadInput(f"--convert gsm8k needs answers ending in '#### <number>', but {len(lacking)} of the first "
                       f"{len(answers)} answers have none (row {lacking[0]}: {example!r}), so every completion would "
                       "score 0; drop --convert and pass --map prompt=question,solution=<a column holding just the "
                       "final answer>, or --map prompt=question with --reward_funcs that read no 'solution' "
                       "(answer_format, think_format_reward or your own path/to/file.py:function).")


def open_think(text: str) -> bool:
    """The text ends inside a `<think>` block that was never closed (an R1-style trace cut before its answer)."""
    return text.rfind("<think>") > text.rfind("</think>")


def unfinished(row: dict) -> bool:
    """A generation the generator stopped at its limit: a finish_reason/stop_reason saying so ('length'), or a last
    assistant turn (or a generated text column) that ends inside an unclosed <think>. SFT on it teaches the model
    to stop mid-thought."""
    if any(str(row.get(column) or "").lower() in STOPPED_AT_LIMIT for column in REASON_COLUMNS):
        return True
    for column, value in row.items():
        if isinstance(value, list) and value and all(isinstance(turn, dict) for turn in value):
            replies = [t for t in value if ROLE_NAMES.get(t.get("role", t.get("from"))) == "assistant"]
            if replies and open_think(turn_text(replies[-1].get("content", replies[-1].get("value")))):
                return True
        elif isinstance(value, str) and column in GENERATED_TEXT_COLUMNS and open_think(value):
            return True
    return False


def drop_unfinished_rows(dataset):
    """The rows that are not unfinished generations (reads only the columns that can tell, images stay stored)."""
    relevant = [c for c in dataset.column_names if c in REASON_COLUMNS or c in GENERATED_TEXT_COLUMNS
                or column_kind(dataset, c) in ("turns", "sharegpt turns")]
    if not relevant:
        return dataset
    return dataset.filter(lambda *values: not unfinished(dict(zip(relevant, values))), input_columns=relevant)


def prepare_dataset(dataset, mapping_spec: str | None, convert: str | None, max_samples: int | None):
    """Applies --map, --convert and --max_samples, in that order, as the validator's fix flags assume (after
    --drop_unfinished, which reads the finish_reason column a conversion drops)."""
    mapping = parse_map(mapping_spec)
    missing = [old for old in mapping.values() if old not in dataset.column_names]
    if missing:
        raise BadInput(f"--map names columns {missing} that the dataset does not have (it has {dataset.column_names}).")
    dataset = dataset.rename_columns({old: new for new, old in mapping.items() if new != old})
    if convert:
        conversions = {"sharegpt": (sharegpt_to_messages, ["conversations"]),
                       "alpaca": (alpaca_to_messages, ["instruction", "output"]),
                       "gsm8k": (gsm8k_to_prompt, ["question", "answer"])}
        if convert not in conversions:
            raise BadInput(f"--convert {convert!r} is unknown; use one of {', '.join(CONVERSIONS)}.")
        function, needs = conversions[convert]
        if any(column not in dataset.column_names for column in needs):
            raise BadInput(f"--convert {convert} needs columns {needs}; the dataset has {dataset.column_names}.")
        if convert == "gsm8k":
            check_gsm8k_answers(dataset)
        dataset = dataset.map(function, remove_columns=[c for c in dataset.column_names if c not in ("images", "image")])
    if max_samples:
        dataset = dataset.select(range(min(max_samples, len(dataset))))
    return dataset


# ---------------------------------------------------------------- what TRL can train on

DEFAULT_REWARD_COLUMNS = ("solution",)  # train_grpo.py's default rewards: number_match reads the reference answer
CHECKED_ROWS = 1000  # content checks read the first rows: the validator's default sample, so both see the same rows


def column_kind(dataset, column: str) -> str:
    """'text', 'turns' (role/content), 'sharegpt turns' (from/value), or the Arrow type, for the whole column."""
    import pyarrow as pa

    arrow_type = dataset.features.arrow_schema.field(column).type
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "text"
    if (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)) and pa.types.is_struct(arrow_type.value_type):
        names = {field.name for field in arrow_type.value_type}
        if {"role", "content"} <= names:
            return "turns"
        if {"from", "value"} <= names:
            return "sharegpt turns"
    return str(arrow_type)


def first_values(dataset, column: str) -> list:
    """The column's values in the first CHECKED_ROWS rows: images stay undecoded, JSON content parts (typed content
    read from JSONL) are decoded."""
    if column in ("image", "images"):
        return dataset.with_format("arrow")[:CHECKED_ROWS].column(column).to_pylist()
    return dataset.select_columns([column])[:CHECKED_ROWS][column]


def turn_text(content) -> str:
    if isinstance(content, list):  # typed content parts of vision conversations
        return "".join(part.get("text") or "" for part in content if isinstance(part, dict))
    return content or ""


def check_kind(dataset, column: str, kinds: tuple[str, ...], method: str):
    kind = column_kind(dataset, column)
    if kind in kinds:
        return
    hint = {"text": " (JSON stored as a string? write each row's turns as a list of objects)" if column == "messages" else "",
            "sharegpt turns": f" (ShareGPT from/value turns: train with --map conversations={column} --convert sharegpt)"}
    advice = hint.get(kind, "") if "turns" in kinds else " (store them as strings)" if kinds == ("text",) else ""
    raise BadInput(f"{method.upper()} needs {' or '.join(kinds)} in '{column}', but it holds {kind} values{advice}.")


def check_no_nulls(dataset, columns: list[str]):
    for column in columns:
        missing = dataset.with_format("arrow")[column].null_count
        if missing:
            raise BadInput(f"{missing} of {len(dataset)} rows have no '{column}' (the rows change shape or hold "
                           "nulls); give every row the same columns or drop those rows.")


def check_roles(dataset, column: str):
    roles = {turn.get("role") for turns in first_values(dataset, column) for turn in turns or []}
    unknown = sorted(map(str, roles - set(ROLES)))
    if not unknown:
        return
    if set(unknown) <= set(ROLE_NAMES):
        raise BadInput(f"'{column}' has roles {unknown} that chat templates do not know; train with "
                       f"--map conversations={column} --convert sharegpt, which names them user and assistant.")
    raise BadInput(f"'{column}' has roles {unknown}; use system, user, assistant or tool.")


IMAGE_MAX_PIXELS = 64_000_000  # far above any model's input; a larger image is a mistake or a decompression bomb
IMAGES_OPENED = 64


def check_image_files(dataset):
    """Images stored as paths must exist here, and images must decode at a sane size, or loading them fails in the
    middle of training: every path is checked, the first rows' images are opened as the trainer will."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for column in ("image", "images"):
        if column not in dataset.column_names:
            continue
        values = dataset.with_format("arrow")[column].combine_chunks()
        if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
            values = pc.list_flatten(values)
        if pa.types.is_struct(values.type) and not {"bytes", "path"} - {f.name for f in values.type}:
            stored_as_path = pc.and_(pc.is_null(values.field("bytes")), pc.is_valid(values.field("path")))
            paths = values.field("path").filter(stored_as_path).to_pylist()
        elif pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            paths = [v for v in values.to_pylist() if v and not v.startswith(("http://", "https://", "data:"))]
        else:
            continue
        missing = [path for path in paths if not Path(path).exists()]
        if missing:
            raise BadInput(f"{len(missing)} image files in '{column}' do not exist (e.g. {missing[0]}); put them at "
                           "those paths or store the image bytes in the dataset.")
        for row, images in enumerate(dataset.with_format("arrow")[:IMAGES_OPENED][column].to_pylist()):
            for image in images if isinstance(images, list) else [images]:
                check_image(image, row, column)


def check_image(image, row: int, column: str):
    import io

    from PIL import Image, UnidentifiedImageError

    if isinstance(image, dict):
        source = io.BytesIO(image["bytes"]) if image.get("bytes") else image.get("path")
        name = image.get("path") or "embedded bytes"
    else:
        source, name = image, image
    if source is None or (isinstance(source, str) and source.startswith(("http://", "https://", "data:"))):
        return
    try:
        with Image.open(source) as opened:
            width, height = opened.size
            if width * height > IMAGE_MAX_PIXELS:
                raise BadInput(f"Row {row}: the image in '{column}' ({name}) is {width}x{height} pixels, beyond "
                               f"{IMAGE_MAX_PIXELS:,}; resize it (models take well under 10 megapixels).")
            opened.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise BadInput(f"Row {row}: the image in '{column}' ({name}) cannot be decoded ({first_line(error)[:120]}); "
                       "fix or drop that row.")


def sft_columns(dataset) -> list[str]:
    columns = dataset.column_names
    if "messages" in columns:
        check_kind(dataset, "messages", ("turns",), "sft")
        return ["messages"]
    if "prompt" in columns and "completion" in columns:
        kind = column_kind(dataset, "prompt")
        check_kind(dataset, "prompt", ("text", "turns"), "sft")
        check_kind(dataset, "completion", (kind,), "sft")
        return ["prompt", "completion"]
    if "text" in columns:
        check_kind(dataset, "text", ("text",), "sft")
        return ["text"]
    if "input_ids" in columns:  # already tokenized: TRL trains on it as is
        return ["input_ids"]
    raise BadInput(f"SFT needs a 'messages', 'text' or 'prompt'+'completion' column but the dataset has "
                   f"{sorted(columns)}; rename columns with --map new=old (validate_dataset.py prints the flags).")


def drop_unanswered(dataset):
    """A conversation with no assistant turn gives the assistant-only loss nothing to learn, and TRL refuses the whole
    run for it: such rows are left out, and said so (the validator's READY and the trainer agree)."""
    conversations = dataset.select_columns(["messages"])["messages"]  # images stay undecoded
    answered = [i for i, turns in enumerate(conversations) if any(t.get("role") == "assistant" for t in turns or [])]
    if len(answered) == len(dataset):
        return dataset
    print(f"note: {len(dataset) - len(answered):,} of {len(dataset):,} conversations have no assistant turn and are "
          "left out (nothing to learn from them).", file=sys.stderr, flush=True)
    return dataset.select(answered)


def check_sft_content(dataset, target: list[str]):
    if target == ["messages"]:
        check_roles(dataset, "messages")
        conversations = [turns or [] for turns in first_values(dataset, "messages")]
        not_last = sum(1 for turns in conversations if not turns or turns[-1].get("role") != "assistant")
        if not_last > len(conversations) / 2:
            raise BadInput(f"{not_last} of the first {len(conversations)} conversations do not end with the "
                           "assistant's turn; SFT learns the assistant's replies, so end each one with it.")
        learned = [turn_text(t.get("content")) for turns in conversations for t in turns if t.get("role") == "assistant"]
    else:
        learned = first_values(dataset, target[-1])
        if target == ["prompt", "completion"] and column_kind(dataset, "completion") == "turns":
            learned = [turn_text(t.get("content")) for turns in learned for t in turns or []]
    if not any(str(text).strip() for text in learned):
        raise BadInput(f"Every {'assistant turn' if target == ['messages'] else repr(target[-1])} in the first "
                       f"{min(len(dataset), CHECKED_ROWS)} rows is empty: there is nothing to learn.")


def dpo_columns(dataset) -> list[str]:
    columns = dataset.column_names
    if not {"chosen", "rejected"} <= set(columns):
        raise BadInput(f"DPO needs 'chosen' and 'rejected' columns (and optionally 'prompt') but the dataset has "
                       f"{sorted(columns)}; rename columns with --map new=old (validate_dataset.py prints the flags).")
    kind = column_kind(dataset, "chosen")
    check_kind(dataset, "chosen", ("text", "turns"), "dpo")
    check_kind(dataset, "rejected", (kind,), "dpo")
    if "prompt" in columns:
        check_kind(dataset, "prompt", (kind,), "dpo")
        return ["prompt", "chosen", "rejected"]
    return ["chosen", "rejected"]


def check_dpo_content(dataset):
    pairs = list(zip(first_values(dataset, "chosen"), first_values(dataset, "rejected")))
    if all(chosen == rejected for chosen, rejected in pairs):
        raise BadInput(f"chosen == rejected in all of the first {len(pairs)} rows: identical pairs teach DPO "
                       "nothing; pair each prompt with a better and a worse answer.")


def unused_prompt(dataset) -> bool:
    """A text prompt beside conversations that already start with it (HuggingFaceH4/ultrafeedback_binarized): TRL
    takes the shared start of chosen/rejected as the prompt once the text copy is gone."""
    if not {"prompt", "chosen"} <= set(dataset.column_names) or column_kind(dataset, "prompt") != "text":
        return False
    if column_kind(dataset, "chosen") != "turns":
        return False
    return all(turns and turns[0].get("role") != "assistant" for turns in first_values(dataset, "chosen"))


def check_training_rows(dataset, method: str, reward_columns: tuple[str, ...] = ()):
    """The rows TRL trains on for `method`: columns it would misread dropped (a 'prompt' beside 'messages' makes
    SFT expect a 'completion'), the rest checked. Raises BadInput, with the reason validate_dataset.py prints as
    INCOMPATIBLE, for rows that would crash the trainer or teach it nothing. `reward_columns`: the columns GRPO's
    reward functions take as required arguments (DEFAULT_REWARD_COLUMNS for the default rewards)."""
    if len(dataset) == 0:
        raise BadInput("The dataset has no rows; check the split and --max_samples.")
    if method == "sft":
        target = sft_columns(dataset)
        if target != ["input_ids"]:
            dataset = dataset.remove_columns([c for c in ("messages", "prompt", "completion", "text")
                                              if c in dataset.column_names and c not in target])
            check_no_nulls(dataset, target)
            if target == ["messages"]:
                dataset = drop_unanswered(dataset)
            check_sft_content(dataset, target)
    elif method == "dpo":
        if unused_prompt(dataset):
            dataset = dataset.remove_columns("prompt")
        target = dpo_columns(dataset)
        dataset = dataset.remove_columns([c for c in ("messages", "completion") if c in dataset.column_names])
        check_no_nulls(dataset, target)
        check_dpo_content(dataset)
    elif method == "grpo":
        if "prompt" not in dataset.column_names:
            raise BadInput(f"GRPO needs a 'prompt' column but the dataset has {sorted(dataset.column_names)}; "
                           "rename one with --map prompt=<column>, or --convert gsm8k for GSM8K-style question/answer data.")
        check_kind(dataset, "prompt", ("text", "turns"), "grpo")
        missing = [column for column in reward_columns if column not in dataset.column_names]
        if missing:
            raise BadInput(f"The reward functions read columns {missing} that the dataset lacks (the default "
                           "number_match compares completions with 'solution'); rename one with --map "
                           "solution=<column>, or pass --reward_funcs with rewards that need none.")
        check_no_nulls(dataset, ["prompt", *reward_columns])
    check_image_files(dataset)
    return dataset


def check_chat_template(dataset, method: str, model: str, has_template: bool):
    """Conversational rows ({"role", "content"} turns) are rendered with the model's chat template; a base model
    may have none, and TRL would fail on the first row."""
    row = dataset[0]
    turns = any(isinstance(value, list) and value and isinstance(value[0], dict) and "role" in value[0]
                for value in row.values())
    if turns and not has_template:
        fix = ("pass --chat_template_path with a template for it (a .jinja file, or a model id whose template fits)"
               if method == "sft" else "start from a model that has one (an instruct model, or an SFT run of this "
               "one trained with --chat_template_path)")
        raise BadInput(f"{model} has no chat template, which conversational rows need for {method.upper()}; {fix}.")
