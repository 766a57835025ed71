"""Loading and reshaping training data, the same in validate_dataset.py and the trainers, so that the flags the
validator prints are the flags the trainer applies."""

from pathlib import Path

from .errors import BadInput, first_line

CONVERSIONS = ("sharegpt", "alpaca", "gsm8k")
ROLES = ("system", "user", "assistant", "tool")
ROLE_NAMES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
              "bot": "assistant", "system": "system", "tool": "tool"}
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".arrow": "arrow"}


def load_rows(name: str, config: str | None, split: str, streaming: bool = False):
    import datasets
    from datasets import load_dataset, load_from_disk
    from datasets.exceptions import DatasetGenerationError

    datasets.logging.set_verbosity_error()  # a row that does not parse is one sentence below, not a logged line too
    path = Path(name)
    try:
        if path.is_file():
            if path.suffix not in FILE_BUILDERS:
                raise BadInput(f"{name} is a {path.suffix or 'extensionless'} file; use jsonl, json, csv, parquet or arrow.")
            if path.stat().st_size == 0:
                raise BadInput(f"Dataset file {name} is empty; point it at a file with rows.")
            if split not in (None, "train"):
                raise BadInput(f"Dataset file {name} has one split, 'train', not {split!r}; drop the split flag.")
            return load_dataset(FILE_BUILDERS[path.suffix], data_files=str(path), split="train", streaming=streaming)
        if path.is_dir() and (path / "dataset_info.json").exists():
            return load_from_disk(str(path))
        if not path.exists() and (path.suffix in FILE_BUILDERS or name.startswith((".", "/"))):
            raise BadInput(f"Dataset file {name} was not found; check the path.")
        return load_dataset(name, config, split=split, streaming=streaming)
    except BadInput:
        raise
    except DatasetGenerationError as error:  # a line that does not parse, a column whose type changes between rows
        cause = first_line(error.__cause__ or error)[:300]
        raise BadInput(f"Dataset {name!r} could not be read ({cause}); fix that row (validate_dataset.py names its "
                       "line).")
    except ConnectionError as error:
        raise BadInput(f"Dataset {name!r} could not be fetched ({error}); check the id and the network, or pass a local file.")
    except FileNotFoundError as error:
        raise BadInput(f"Dataset {name!r} was not found ({error}); pass a Hub dataset id, a local file or a directory.")
    except OSError as error:  # a file that cannot be opened as what its name says
        raise BadInput(f"Dataset {name!r} could not be read ({first_line(error)[:200]}); fix or replace the "
                       "file.")
    except ValueError as error:
        if "split" in str(error).lower():
            raise BadInput(f"Dataset {name!r} has no split {split!r}; pass --dataset_train_split with an existing one.")
        raise BadInput(f"Dataset {name!r} could not be read: {error}")


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


def prepare_dataset(dataset, mapping_spec: str | None, convert: str | None, max_samples: int | None):
    """Applies --map, --convert and --max_samples, in that order, as the validator's fix flags assume."""
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
    """The column's raw values in the first CHECKED_ROWS rows (images stay undecoded)."""
    return dataset.with_format("arrow")[:CHECKED_ROWS].column(column).to_pylist()


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


def check_image_files(dataset):
    """Images stored as paths must exist here, or loading them fails in the middle of training."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for column in ("image", "images"):
        if column not in dataset.column_names:
            continue
        values = dataset.with_format("arrow")[column].combine_chunks()
        if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
            values = pc.list_flatten(values)
        if not pa.types.is_struct(values.type) or {"bytes", "path"} - {f.name for f in values.type}:
            continue
        stored_as_path = pc.and_(pc.is_null(values.field("bytes")), pc.is_valid(values.field("path")))
        missing = [path for path in values.field("path").filter(stored_as_path).to_pylist() if not Path(path).exists()]
        if missing:
            raise BadInput(f"{len(missing)} image files in '{column}' do not exist (e.g. {missing[0]}); put them at "
                           "those paths or store the image bytes in the dataset.")


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
