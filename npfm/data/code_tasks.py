"""Fine-tuning tasks with real labels, made from the standard library's own source.

Nothing is downloaded: the text is the ``.py`` files of the running Python,
and the labels come from Python itself (its parser and its tokenizer).

**Train and test are split by file**, so no line of a test file is seen in
training: a file is a test file when crc32(its relative path) % 5 == 0 (about
20%), the same on every run whatever the seed. Exact duplicates of a training
text are dropped from the test set. The stdlib's own test suites (``test/``,
``tests/``, ``idle_test/``) are left out: they hold deliberately broken and
Python 2 files.

1. **Acceptability for code** (like CoLA, sentence classification).
   ``make_acceptability_dataset`` takes snippets of 1-3 consecutive lines
   that Python parses on their own (after ``textwrap.dedent``; 10-120
   characters; never inside a multi-line string such as a docstring). Half
   are corrupted by one random edit of the token sequence from ``tokenize``:
   delete a token, swap two different tokens next to each other on one
   line, or duplicate a token. The edit keeps the text's spacing and adds a
   space only where two tokens would otherwise fuse into one (``x`` ``y`` ->
   ``x y``, ``=`` ``=`` -> ``= =``). The label is the parser's verdict on
   the final text,

       label = 1 if ast.parse(text) succeeds else 0,

   so a corruption that still parses (``x = -1`` -> ``x = - -1``) is labelled 1.
   ``ast.parse`` is the judge rather than ``compile``: compiling also checks
   context (``return`` outside a function), which a snippet cut from its
   function cannot satisfy. Both classes are kept to exactly half of the set.

2. **"NER" for code** (token classification). ``make_code_ner_dataset`` takes
   single lines (stripped, 10-120 characters; never a line inside a
   multi-line string, such as a docstring) and labels each Python token
   with its kind, one of ``CODE_NER_LABELS``:

       NAME KEYWORD OP NUMBER STRING COMMENT

   (``keyword.iskeyword``; soft keywords such as ``match`` and ``_`` count
   as NAME.) An example is ``(text, [(start_char, end_char, label_id), ...])``.
   ``align_labels`` turns it into model inputs: each Python token's text is
   WordPiece-tokenized *on its own*, so every sub-token belongs to exactly
   one Python token even though WordPiece lower-cases and splits punctuation;
   the first sub-token carries the label and the rest get -100 (ignored), as
   Hugging Face's token classification does.

       text   "x = 1"       spans  [(0,1,NAME), (2,3,OP), (4,5,NUMBER)]
       pieces [CLS]  x     =   1      [SEP]
       labels -100   NAME  OP  NUMBER -100
"""

from __future__ import annotations

import ast
import io
import keyword
import os
import textwrap
import tokenize
import warnings
import zlib

import numpy as np

from .sources import read_text, stdlib_dir, stdlib_python_files

IGNORE_INDEX = -100
CODE_NER_LABELS = ("NAME", "KEYWORD", "OP", "NUMBER", "STRING", "COMMENT")
MIN_CHARS, MAX_CHARS = 10, 120
EXCLUDED_DIRS = ("test", "tests", "idle_test")

# Tokens that carry no text of their own: never edited, never labelled.
LAYOUT_TOKENS = {tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT,
                 tokenize.ENDMARKER, tokenize.ENCODING}
OPERATOR_CHARS = set("+-*/%@&|^~<>=!:.")


# ----- the files ------------------------------------------------------------------

def split_files(test_modulus=5):
    """(train_paths, test_paths) of the stdlib's .py files, by crc32(path) % test_modulus."""
    train, test = [], []
    for path in stdlib_python_files():
        if any(part in EXCLUDED_DIRS for part in path.split("/")[:-1]):
            continue
        (test if zlib.crc32(path.encode("utf-8")) % test_modulus == 0 else train).append(path)
    return train, test


def _file_lines(path):
    """The file's lines, with None for each line inside a multi-line string.

    A line of a docstring tokenizes on its own as if it were code ("Return
    the list." is NAME NAME NAME OP), so such lines are never used. A file
    that does not parse gives no lines.
    """
    source = read_text(os.path.join(stdlib_dir(), path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            return []
    lines = source.splitlines()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Constant, ast.JoinedStr)) and node.end_lineno > node.lineno:
            for row in range(node.lineno - 1, min(node.end_lineno, len(lines))):
                lines[row] = None
    return lines


def parses(text):
    """True if Python's parser accepts ``text`` (warnings silenced, no error escapes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ast.parse(text)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            return False
    return True


def python_tokens(text):
    """[(type, string, start_char, end_char)] of ``text``'s tokens, layout tokens left out.

    Raises ``tokenize.TokenError`` or ``SyntaxError`` where the tokenizer does.
    An f-string, which Python 3.12+ tokenizes into parts, is one STRING token.
    """
    line_starts = [0]
    for line in text.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))

    def offset(position):
        row, col = position
        return line_starts[row - 1] + col

    tokens, depth, fstring_start = [], 0, None
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        name = tokenize.tok_name[tok.type]
        if name.endswith("STRING_START"):            # FSTRING_START, TSTRING_START (3.12+)
            if depth == 0:
                fstring_start = offset(tok.start)
            depth += 1
        elif name.endswith("STRING_END") and depth:
            depth -= 1
            if depth == 0:
                tokens.append((tokenize.STRING, text[fstring_start:offset(tok.end)],
                               fstring_start, offset(tok.end)))
        elif depth == 0 and tok.type not in LAYOUT_TOKENS:
            tokens.append((tok.type, tok.string, offset(tok.start), offset(tok.end)))
    return tokens


# ----- task 1: acceptability -----------------------------------------------------------

def _is_word_char(char):
    return char.isalnum() or char == "_" or ord(char) > 127


def _could_fuse(a, b):
    """Could the characters a, b written side by side join two tokens into one?

    "x" "y" -> xy, "b" "'s'" -> b's', "1" "." -> 1., "." "5" -> .5,
    "=" "=" -> ==; a bracket, comma or whitespace never fuses.
    """
    return ((_is_word_char(a) and (_is_word_char(b) or b in "'\""))
            or (a.isdigit() and b == ".") or (a == "." and b.isdigit())
            or (a in OPERATOR_CHARS and b in OPERATOR_CHARS))


def _join(left, right):
    """left + right, with a space between only where two tokens would otherwise fuse."""
    if left and right and _could_fuse(left[-1], right[0]):
        return left + " " + right
    return left + right


def corrupt(text, rng):
    """``text`` after one random token edit (delete, swap adjacent, duplicate), or None.

    None when the text has too few tokens for the edit drawn.
    """
    try:
        tokens = python_tokens(text)
    except (tokenize.TokenError, SyntaxError):
        return None
    tokens = [t for t in tokens if t[0] != tokenize.COMMENT]   # editing a comment changes nothing
    if not tokens:
        return None
    edit = int(rng.integers(3))
    if edit == 0:                                              # delete a token
        _, _, start, end = tokens[int(rng.integers(len(tokens)))]
        left, right = text[:start], text[end:]
        if not left or left[-1].isspace():
            right = right.lstrip(" \t")                        # keep the indentation as it was
        return _join(left, right)
    if edit == 1:                                              # swap two adjacent tokens
        pairs = [(a, b) for a, b in zip(tokens, tokens[1:])
                 if a[1] != b[1] and "\n" not in text[a[3]:b[2]]]       # on one line
        if not pairs:
            return None
        (_, first, start1, end1), (_, second, start2, end2) = pairs[int(rng.integers(len(pairs)))]
        swapped = _join(_join(text[:start1], second), text[end1:start2])
        return _join(_join(swapped, first), text[end2:])
    _, string, _, end = tokens[int(rng.integers(len(tokens)))]   # duplicate a token
    return _join(_join(text[:end], string), text[end:])


def _snippets(lines, rng, tries=40, keep=8):
    """Up to ``keep`` random snippets of 1-3 lines of a file that parse on their own."""
    found = []
    if not lines:
        return found
    for _ in range(tries):
        start = int(rng.integers(len(lines)))
        window = lines[start:start + int(rng.integers(1, 4))]
        if None in window:
            continue
        text = textwrap.dedent("\n".join(window)).strip("\n").rstrip()
        if (MIN_CHARS <= len(text) <= MAX_CHARS and not text.lstrip().startswith("#")
                and text not in found and parses(text)):
            found.append(text)
            if len(found) == keep:
                break
    return found


def _acceptability_split(paths, n, rng, exclude=frozenset()):
    """n (text, label) examples, n // 2 of label 1 (parses) and the rest label 0."""
    need = {1: n // 2, 0: n - n // 2}
    pools = {1: [], 0: []}
    seen = set(exclude)
    for k in rng.permutation(len(paths)):
        for snippet in _snippets(_file_lines(paths[k]), rng):
            if len(pools[1]) < need[1] and rng.random() < 0.5:
                text = snippet
            else:
                text = corrupt(snippet, rng)
                if text is None:
                    continue
            label = int(parses(text))
            if text in seen or len(pools[label]) == need[label]:
                continue
            seen.add(text)
            pools[label].append((text, label))
        if all(len(pools[c]) == need[c] for c in pools):
            break
    else:
        raise ValueError(f"make_acceptability_dataset: the files give only {len(pools[1])} "
                         f"valid and {len(pools[0])} invalid examples; ask for fewer")
    examples = pools[1] + pools[0]
    return [examples[i] for i in rng.permutation(len(examples))]


def make_acceptability_dataset(n_train=2000, n_test=500, seed=0):
    """(train, test): lists of (code text, label), label 1 = parses, 0 = does not.

    Each split is half label 1 and half label 0, deterministic given ``seed``.
    """
    train_paths, test_paths = split_files()
    train = _acceptability_split(train_paths, n_train, np.random.default_rng([seed, 0]))
    test = _acceptability_split(test_paths, n_test, np.random.default_rng([seed, 1]),
                                exclude={text for text, _ in train})
    return train, test


# ----- task 2: token classification -------------------------------------------------------

def code_token_spans(text):
    """[(start_char, end_char, label_id)] of each Python token of ``text`` (None if it
    does not tokenize cleanly). label_id indexes ``CODE_NER_LABELS``."""
    try:
        tokens = python_tokens(text)
    except (tokenize.TokenError, SyntaxError):
        return None
    spans = []
    for kind, string, start, end in tokens:
        if kind == tokenize.NAME:
            label = "KEYWORD" if keyword.iskeyword(string) else "NAME"
        elif kind in (tokenize.OP, tokenize.NUMBER, tokenize.STRING, tokenize.COMMENT):
            label = tokenize.tok_name[kind]
        else:                                        # ERRORTOKEN: not clean Python
            return None
        spans.append((start, end, CODE_NER_LABELS.index(label)))
    return spans


def _ner_split(paths, n, rng, exclude=frozenset(), per_file=8):
    examples, seen = [], set(exclude)
    for k in rng.permutation(len(paths)):
        lines = _file_lines(paths[k])
        taken = 0
        for i in rng.permutation(len(lines))[:4 * per_file]:
            if lines[i] is None:
                continue
            text = lines[i].strip()
            if not MIN_CHARS <= len(text) <= MAX_CHARS or text in seen:
                continue
            spans = code_token_spans(text)
            if not spans:
                continue
            seen.add(text)
            examples.append((text, spans))
            taken += 1
            if taken == per_file or len(examples) == n:
                break
        if len(examples) == n:
            return examples
    raise ValueError(f"make_code_ner_dataset: the files give only {len(examples)} lines; "
                     f"ask for fewer")


def make_code_ner_dataset(n_train=2000, n_test=500, seed=0):
    """(train, test): lists of (line, [(start_char, end_char, label_id), ...]).

    Deterministic given ``seed``; label ids index ``CODE_NER_LABELS``.
    """
    train_paths, test_paths = split_files()
    train = _ner_split(train_paths, n_train, np.random.default_rng([seed, 2]))
    test = _ner_split(test_paths, n_test, np.random.default_rng([seed, 3]),
                      exclude={text for text, _ in train})
    return train, test


def align_labels(tokenizer, text, spans, max_len=128):
    """Model inputs for one NER example: (ids, attention_mask, labels), int32 arrays (T,).

    ``[CLS] pieces [SEP] [PAD]...`` with T = max_len. Each span's text is
    WordPiece-tokenized on its own; its first piece gets the span's label,
    the other pieces, [CLS], [SEP] and padding get -100. Pieces past
    ``max_len - 2`` are cut off.
    """
    if max_len < 2:
        raise ValueError(f"align_labels: max_len must be >= 2, got {max_len}")
    ids, labels = [], []
    for start, end, label in spans:
        if not 0 <= start <= end <= len(text):
            raise ValueError(f"align_labels: span ({start}, {end}) is outside the text "
                             f"of length {len(text)}")
        pieces = tokenizer.encode(text[start:end]).tolist()
        if pieces:
            ids.extend(pieces)
            labels.extend([label] + [IGNORE_INDEX] * (len(pieces) - 1))
    ids = [tokenizer.cls_id] + ids[:max_len - 2] + [tokenizer.sep_id]
    labels = [IGNORE_INDEX] + labels[:max_len - 2] + [IGNORE_INDEX]
    n = len(ids)
    out_ids = np.full(max_len, tokenizer.pad_id, dtype=np.int32)        # (T,)
    out_ids[:n] = ids
    out_labels = np.full(max_len, IGNORE_INDEX, dtype=np.int32)         # (T,)
    out_labels[:n] = labels
    attention_mask = (np.arange(max_len) < n).astype(np.int32)          # (T,)
    return out_ids, attention_mask, out_labels


def align_labels_batch(tokenizer, examples, max_len=128):
    """``align_labels`` of each (text, spans) example, stacked to (B, T) arrays."""
    rows = [align_labels(tokenizer, text, spans, max_len) for text, spans in examples]
    if not rows:
        empty = np.zeros((0, max_len), dtype=np.int32)
        return empty, empty.copy(), empty.copy()
    ids, masks, labels = zip(*rows)
    return np.stack(ids), np.stack(masks), np.stack(labels)            # (B, T) each
