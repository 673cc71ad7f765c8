import pytest

from npfm.data import sources
from npfm.data.corpus import (SEPARATOR, Corpus, in_validation, load_corpus,
                              utf8_size)


def names(docs):
    return [name for name, _ in docs]


def write(folder, rel, content):
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)


def test_stdlib_split_is_deterministic_disjoint_and_by_name():
    corpus = load_corpus("stdlib", val_fraction=0.05)
    again = load_corpus("stdlib", val_fraction=0.05)
    assert names(corpus.train_docs) == names(again.train_docs)
    assert names(corpus.val_docs) == names(again.val_docs)
    train, val = set(names(corpus.train_docs)), set(names(corpus.val_docs))
    assert not train & val
    assert len(train) > 1000 and 20 < len(val) < 200
    assert all(in_validation(n, 0.05) for n in val)
    assert not any(in_validation(n, 0.05) for n in train)
    assert names(corpus.train_docs) == sorted(train)   # the fixed order
    assert set(sources.stdlib_python_files()) >= train | val


def test_texts_are_documents_joined_by_the_separator():
    corpus = load_corpus("stdlib", max_bytes=200_000)
    assert corpus.train_text == SEPARATOR.join(text for _, text in corpus.train_docs)
    assert corpus.val_text == SEPARATOR.join(text for _, text in corpus.val_docs)
    assert "import" in corpus.train_text
    assert "stdlib" in corpus.describe() and "train" in corpus.describe()


def test_max_bytes_reads_a_prefix_of_the_same_split():
    small = load_corpus("stdlib", max_bytes=300_000)
    sizes = [utf8_size(text) for _, text in small.train_docs]
    assert sum(sizes) >= 300_000 > sum(sizes[:-1])      # stops once the limit is reached
    assert utf8_size(small.val_text) < 300_000
    full = load_corpus("stdlib")
    n = len(small.train_docs)
    assert names(small.train_docs) == names(full.train_docs)[:n]
    assert set(names(small.val_docs)) <= set(names(full.val_docs))


def test_pydoc_is_one_document_per_topic():
    corpus = load_corpus("pydoc", val_fraction=0.1)
    docs = corpus.train_docs + corpus.val_docs
    assert len(docs) == len(sources.pydoc_documents())
    assert corpus.val_docs and not set(names(corpus.train_docs)) & set(names(corpus.val_docs))
    assert "for" in names(docs)


def test_folder_reads_text_files_and_skips_binary_ones(tmp_path):
    write(tmp_path, "b/second.txt", "second file\r\nwith windows line ends\n")
    write(tmp_path, "a.md", "# first\n")
    write(tmp_path, "image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    write(tmp_path, "latin1.txt", "caf\xe9".encode("latin-1"))   # not UTF-8
    write(tmp_path, ".git/config", "[core]\n")
    write(tmp_path, "b/__pycache__/x.txt", "cached\n")
    write(tmp_path, "empty.txt", "")
    for i in range(30):
        write(tmp_path, f"c/note{i:02d}.txt", f"note number {i}\n")
    corpus = load_corpus(tmp_path, val_fraction=0.2)
    kept = names(corpus.train_docs) + names(corpus.val_docs)
    assert sorted(kept) == ["a.md", "b/second.txt"] + [f"c/note{i:02d}.txt" for i in range(30)]
    assert names(corpus.train_docs) == sorted(names(corpus.train_docs))
    assert corpus.val_docs and corpus.train_docs
    docs = dict(corpus.train_docs + corpus.val_docs)
    assert docs["b/second.txt"] == "second file\nwith windows line ends\n"
    assert load_corpus(str(tmp_path), val_fraction=0.2).val_docs == corpus.val_docs


def test_tiny_folder_still_gets_a_validation_document(tmp_path):
    files = [name for name in (f"f{i}.txt" for i in range(50)) if not in_validation(name, 0.05)][:3]
    for name in files:
        write(tmp_path, name, f"text of {name}\n")
    corpus = load_corpus(tmp_path, val_fraction=0.05)
    assert names(corpus.val_docs) == [sorted(files)[-1]]
    assert names(corpus.train_docs) == sorted(files)[:-1]


def test_single_file_is_split_by_position_at_a_line(tmp_path):
    text = "".join(f"line {i}\n" for i in range(100))
    write(tmp_path, "one.txt", text)
    for spec in (tmp_path / "one.txt", tmp_path):       # a file, or a folder of one file
        corpus = load_corpus(spec, val_fraction=0.1)
        assert corpus.train_text + corpus.val_text == text
        assert corpus.val_text.startswith("line ") and 0.05 < len(corpus.val_text) / len(text) < 0.15


def test_single_file_max_bytes(tmp_path):
    write(tmp_path, "big.txt", "0123456789\n" * 1000)
    corpus = load_corpus(tmp_path / "big.txt", val_fraction=0.1, max_bytes=1000)
    assert 900 <= len(corpus.train_text) <= 1000 + 11 and corpus.val_text


def test_errors_name_the_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ValueError, match="nope"):
        load_corpus(missing)
    with pytest.raises(ValueError, match=f"no text files found under {tmp_path}"):
        load_corpus(tmp_path)
    write(tmp_path, "blob.bin", b"\x00\x01\x02")
    with pytest.raises(ValueError, match="no text files found"):
        load_corpus(tmp_path)
    with pytest.raises(ValueError, match="blob.bin"):
        load_corpus(tmp_path / "blob.bin")
    with pytest.raises(ValueError, match="val_fraction"):
        load_corpus("pydoc", val_fraction=1.0)
    with pytest.raises(ValueError, match="max_bytes"):
        load_corpus("pydoc", max_bytes=0)


def test_zero_val_fraction_keeps_everything_for_training():
    corpus = load_corpus("pydoc", val_fraction=0.0)
    assert corpus.val_docs == [] and corpus.val_text == ""
    assert isinstance(corpus, Corpus) and len(corpus.train_docs) == len(sources.pydoc_documents())
