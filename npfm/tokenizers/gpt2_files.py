"""GPT-2's tokenizer files, ``vocab.json`` and ``merges.txt``, read and written.

vocab.json maps each token to its id; merges.txt lists the merges by rank,
one "a b" per line after a "#version" line. Both spell a token's bytes in
GPT-2's printable alphabet (``bytes_to_unicode``), so that no token string
holds a space or a control character. The ids are the file's own: which id
each byte, each merge and each special token has is returned as a *layout*
(see ``npfm.tokenizers.bpe.BPETokenizer``).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache


@lru_cache(maxsize=1)
def bytes_to_unicode():
    """GPT-2's table byte -> printable character, the alphabet of vocab.json and merges.txt.

    The 188 bytes that are printable and not a space stand for themselves
    ("!".."~", "\u00a1".."\u00ac", "\u00ae".."\u00ff"); the other 68, in byte order,
    become U+0100, U+0101, ... so that no token string holds a space or a
    control character (the space byte 0x20 is "\u0120", drawn as "Ġ").
    """
    kept = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in kept:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def gpt2_spelling(token_bytes):
    """A token's bytes as vocab.json and merges.txt spell them, in GPT-2's alphabet."""
    table = bytes_to_unicode()
    return "".join(table[b] for b in token_bytes)


def read_gpt2_files(vocab_path, merges_path):
    """(merges, special_tokens, layout) of a GPT-2 style ``vocab.json`` + ``merges.txt``.

    merges: (a, b) id pairs by rank; special_tokens: the names of the tokens
    that are neither a byte nor made by a merge (GPT-2's "<|endoftext|>");
    layout: {"bytes": the id of each of the 256 bytes, "merges": the id each
    merge makes, "special": the id of each special token}. Every problem
    raises a ValueError naming the file.
    """
    try:
        with open(vocab_path, encoding="utf-8") as f:
            vocab = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{vocab_path} is not valid JSON ({err})") from None
    if not isinstance(vocab, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in vocab.values()):
        raise ValueError(f"{vocab_path}: expected a JSON object of token -> integer id")
    ids = sorted(vocab.values())
    if ids != list(range(len(ids))):
        raise ValueError(f"{vocab_path}: the ids must be 0 .. {len(ids) - 1}, each once")
    missing = [b for b in range(256) if bytes_to_unicode()[b] not in vocab]
    if missing:
        raise ValueError(f"{vocab_path}: {len(missing)} of the 256 byte tokens are missing "
                         f"(e.g. byte {missing[0]}, {bytes_to_unicode()[missing[0]]!r}); a "
                         "byte-level vocabulary holds every byte")
    byte_ids = [vocab[bytes_to_unicode()[b]] for b in range(256)]
    merges, merge_ids = [], []
    with open(merges_path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for number, line in enumerate(lines, start=1):
        if not line or (number == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"{merges_path}: line {number} is {line!r}, not two tokens "
                             "separated by one space")
        a, b = parts
        for token in (a, b, a + b):
            if token not in vocab:
                raise ValueError(f"{merges_path}: line {number} ({line!r}) uses {token!r}, "
                                 f"which {os.path.basename(vocab_path)} lacks")
        merges.append((vocab[a], vocab[b]))
        merge_ids.append(vocab[a + b])
    made = set(byte_ids) | set(merge_ids)
    specials = sorted((i, token) for token, i in vocab.items() if i not in made)
    layout = {"bytes": byte_ids, "merges": merge_ids, "special": [i for i, _ in specials]}
    return merges, [t for _, t in specials], layout


def write_gpt2_files(directory, vocab, merges):
    """Write ``vocab.json`` ({token: id}) and ``merges.txt`` (the (a, b) token
    spellings by rank) into ``directory``; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    vocab_path = os.path.join(directory, "vocab.json")
    merges_path = os.path.join(directory, "merges.txt")
    with open(vocab_path, "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(merges_path, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    return vocab_path, merges_path
