"""Writes testdata/csv_corpus.json: odd CSV texts and how a reference parser reads them.

The reference is Python's csv module with strict=True (RFC 4180 quoting: a quote
opens a field only at its start, a closing quote must be followed by the delimiter
or a line end, a doubled quote is a literal quote), with a UTF-8 byte order mark
dropped, empty lines skipped, and every row required to have the header's number
of fields. `src/source/csv.rs` reads each text through batchinfer's CSV reader and
must produce the same header and rows, or refuse the same texts.

Run: python testdata/generate_csv_corpus.py   (standard library only)
"""

import csv
import io
import json
import random
from pathlib import Path

OUT = Path(__file__).parent / "csv_corpus.json"
CASES = 400


def reference(text):
    """The header and rows, or None when the reference refuses the text."""
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error:
        return None
    rows = [r for r in rows if r != []]
    if not rows:
        return None
    width = len(rows[0])
    if any(len(r) != width for r in rows[1:]) or len(rows) < 2:
        return None
    return rows


# Fields: plain, quoted with the delimiter / a doubled quote / a line end inside,
# a literal quote inside an unquoted field, empty, spaces.
GOOD_FIELDS = [
    "abc", "12", "-3.5", "", " x ", "a b", 'ab"c', "x'y",
    '"q,1"', '"he said ""hi"""', '"line\nbreak"', '"cr\r\nlf"', '""', '" "', "é",
]
# Bad quoting: a quote that never closes, text after a closing quote.
BAD_FIELDS = ['"open', '"ab"c', '"x" ', '"a""b"c', '"unterminated\nrow']
ENDINGS = ["\n", "\r\n", "\r"]


def make(rng):
    ncols = rng.randint(1, 4)
    ending = rng.choice(ENDINGS)
    header = ",".join(f"h{i}" for i in range(ncols))
    lines = [header]
    bad = rng.random() < 0.45
    for _ in range(rng.randint(1, 6)):
        width = ncols
        if rng.random() < 0.08:
            width = ncols + rng.choice([-1, 1])  # ragged
        fields = [rng.choice(GOOD_FIELDS) for _ in range(max(width, 1))]
        if width == 0:
            fields = []
        lines.append(",".join(fields))
        if rng.random() < 0.1:
            lines.append("")  # an empty line
    if bad:
        row = rng.randrange(1, len(lines))
        if lines[row]:
            fields = lines[row].split(",")
            fields[rng.randrange(len(fields))] = rng.choice(BAD_FIELDS)
            lines[row] = ",".join(fields)
    text = ending.join(lines)
    if rng.random() < 0.7:
        text += ending
    if rng.random() < 0.15:
        text = "\ufeff" + text
    return text


def main():
    rng = random.Random(20261201)
    cases = []
    for i in range(CASES):
        text = make(rng)
        cases.append({"name": f"case-{i:03d}", "text": text, "expected": reference(text)})
    # The cases the hardening is about, spelled out.
    fixed = {
        "stray-quote-mid-file": "a,b\n1,x\n2,\"y\n3,z\n4,w\n",
        "unterminated-last-row": "a,b\n1,x\n2,\"y",
        "quote-then-text": "a,b\n1,\"x\"y\n",
        "literal-quote-inside": "a,b\n1,ab\"c\n",
        "bom": "\ufeffa,b\n1,2\n",
        "crlf-inside-quotes": "a,b\r\n1,\"x\r\ny\"\r\n",
        "cr-only": "a,b\r1,2\r3,4",
        "empty-lines": "a,b\n\n1,2\n\n\n3,4\n",
        "ragged": "a,b\n1,2\n3\n",
    }
    for name, text in fixed.items():
        cases.append({"name": name, "text": text, "expected": reference(text)})
    OUT.write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    read = sum(c["expected"] is not None for c in cases)
    print(f"{OUT}: {len(cases)} cases, {read} read, {len(cases) - read} refused")


if __name__ == "__main__":
    main()
