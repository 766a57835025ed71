"""Writes the bundled sample datasets in data/sample/ (deterministic; re-run after editing the tasks)."""

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data" / "sample"

# (function name, signature, task description, correct body, plausible wrong body)
TASKS = [
    ("add", "a, b", "returns the sum of `a` and `b`", "return a + b", "return a - b"),
    ("multiply", "a, b", "returns the product of `a` and `b`", "return a * b", "return a + b"),
    ("is_even", "n", "returns True when `n` is even", "return n % 2 == 0", "return n % 2 == 1"),
    ("square", "x", "returns `x` squared", "return x * x", "return x * 2"),
    ("reverse_string", "s", "returns the string `s` reversed", "return s[::-1]", "return s"),
    ("max_of_list", "xs", "returns the largest element of the list `xs`", "return max(xs)", "return xs[0]"),
    ("min_of_list", "xs", "returns the smallest element of the list `xs`", "return min(xs)", "return xs[-1]"),
    ("count_vowels", "s", "counts the vowels in the string `s`",
     "return sum(1 for c in s.lower() if c in 'aeiou')", "return len(s)"),
    ("is_palindrome", "s", "returns True when `s` reads the same backwards",
     "return s == s[::-1]", "return s == s.upper()"),
    ("factorial", "n", "returns n factorial",
     "result = 1\n    for i in range(2, n + 1):\n        result *= i\n    return result", "return n * n"),
    ("fibonacci", "n", "returns the n-th Fibonacci number (fibonacci(0) == 0)",
     "a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a", "return n"),
    ("sum_list", "xs", "returns the sum of the numbers in `xs`", "return sum(xs)", "return len(xs)"),
    ("average", "xs", "returns the mean of the non-empty list `xs`", "return sum(xs) / len(xs)", "return sum(xs)"),
    ("unique_sorted", "xs", "returns the sorted list of distinct elements of `xs`",
     "return sorted(set(xs))", "return sorted(xs)"),
    ("word_count", "s", "returns the number of whitespace-separated words in `s`",
     "return len(s.split())", "return len(s)"),
    ("capitalize_words", "s", "capitalizes the first letter of every word in `s`",
     "return ' '.join(w.capitalize() for w in s.split())", "return s.upper()"),
    ("is_prime", "n", "returns True when `n` is a prime number",
     "if n < 2:\n        return False\n    return all(n % d for d in range(2, int(n ** 0.5) + 1))", "return n % 2 == 1"),
    ("gcd", "a, b", "returns the greatest common divisor of `a` and `b`",
     "while b:\n        a, b = b, a % b\n    return abs(a)", "return min(a, b)"),
    ("flatten", "xss", "flattens a list of lists into one list",
     "return [x for xs in xss for x in xs]", "return xss[0]"),
    ("count_char", "s, c", "counts how often the character `c` occurs in `s`", "return s.count(c)", "return s.find(c)"),
    ("celsius_to_fahrenheit", "c", "converts `c` degrees Celsius to Fahrenheit",
     "return c * 9 / 5 + 32", "return c + 32"),
    ("last_element", "xs", "returns the last element of `xs`", "return xs[-1]", "return xs[0]"),
    ("remove_duplicates", "xs", "removes duplicates from `xs` keeping the first occurrence order",
     "seen = set()\n    return [x for x in xs if not (x in seen or seen.add(x))]", "return list(set(xs))"),
    ("digits_sum", "n", "returns the sum of the decimal digits of the non-negative integer `n`",
     "return sum(int(d) for d in str(n))", "return n % 10"),
    ("list_product", "xs", "returns the product of the numbers in `xs`",
     "result = 1\n    for x in xs:\n        result *= x\n    return result", "return sum(xs)"),
]
PHRASINGS = [
    "Write a Python function `{name}({sig})` that {desc}.",
    "Implement `{name}({sig})` in Python: it {desc}.",
    "Can you write `{name}({sig})`? The function {desc}.",
    "I need a Python function named `{name}` taking `{sig}` that {desc}.",
    "Solve this in Python. Define `{name}({sig})`, which {desc}.",
    "Please code `{name}({sig})` so that it {desc}. Keep it short.",
    "Task: `{name}({sig})` {desc}. Write the function.",
    "Using plain Python, create `{name}({sig})`; it {desc}.",
    "Give me an implementation of `{name}({sig})` that {desc}.",
    "Define a function {name} with parameters ({sig}) that {desc}.",
    "Write code: a function `{name}({sig})` that {desc}. No imports.",
    "How would you write `{name}({sig})` that {desc}?",
]
SYSTEM = "You are a helpful assistant that writes correct, concise Python."


def answer(name, sig, body):
    return f"```python\ndef {name}({sig}):\n    {body}\n```"


def sft_rows(rng):
    rows = []
    for name, sig, desc, good, _bad in TASKS:
        for phrasing in PHRASINGS:
            messages = [{"role": "user", "content": phrasing.format(name=name, sig=sig, desc=desc)},
                        {"role": "assistant", "content": answer(name, sig, good)}]
            if rng.random() < 0.3:
                messages.insert(0, {"role": "system", "content": SYSTEM})
            rows.append({"messages": messages})
    rng.shuffle(rows)
    return rows


def dpo_rows(rng):
    rows = []
    for name, sig, desc, good, bad in TASKS:
        for phrasing in rng.sample(PHRASINGS, 6):
            rows.append({"prompt": [{"role": "user", "content": phrasing.format(name=name, sig=sig, desc=desc)}],
                         "chosen": [{"role": "assistant", "content": answer(name, sig, good)}],
                         "rejected": [{"role": "assistant", "content": answer(name, sig, bad)}]})
    rng.shuffle(rows)
    return rows


def math_rows(rng):
    rows = []
    items = ["apples", "books", "marbles", "pencils", "cookies", "stickers"]
    people = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana"]
    for _ in range(200):
        who, item = rng.choice(people), rng.choice(items)
        a, b, c = rng.randint(2, 40), rng.randint(2, 20), rng.randint(2, 5)
        kind = rng.randrange(3)
        if kind == 0:
            q = f"{who} has {a} {item} and buys {b} more. How many {item} does {who} have now?"
            steps, result = f"{a} + {b} = {a + b}", a + b
        elif kind == 1:
            q = f"{who} has {a + b} {item} and gives away {b}. How many {item} are left?"
            steps, result = f"{a + b} - {b} = {a}", a
        else:
            q = f"{who} buys {c} boxes with {b} {item} in each box. How many {item} is that in total?"
            steps, result = f"{c} * {b} = {c * b}", c * b
        rows.append({"question": q, "answer": f"{steps}\n#### {result}"})
    return rows


def main():
    rng = random.Random(0)
    OUT.mkdir(parents=True, exist_ok=True)
    for filename, rows in [("sft_code.jsonl", sft_rows(rng)), ("dpo_code.jsonl", dpo_rows(rng)),
                           ("grpo_math.jsonl", math_rows(rng))]:
        with open(OUT / filename, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        print(f"{OUT / filename}: {len(rows)} rows")


if __name__ == "__main__":
    main()
