import time

from npfm.data.sources import pydoc_documents
from npfm.tokenizers.wordpiece import WordPieceTokenizer
from npfm.tokenizers.wordpiece_vocab import SPECIAL_TOKENS, learn_wordpiece_vocab


# ----- training -------------------------------------------------------------------------------

def test_train_learns_pieces_and_is_deterministic():
    texts = ["the lowest newest widest", "low lower lowest new newer newest"] * 5
    tok = WordPieceTokenizer.train(texts, vocab_size=60)
    assert tok.vocab[:5] == list(SPECIAL_TOKENS)
    assert {"l", "##o", "##w"} <= set(tok.vocab)
    # Merging stops when every word is one piece: each corpus word is then a token.
    assert tok.vocab_size < 60
    for word in "the lowest newest widest low lower new newer".split():
        assert tok.tokenize(word) == [word]
    assert WordPieceTokenizer.train(texts, vocab_size=60).vocab == tok.vocab
    n_base = 5 + 2 * len(set("thelowestnewidr"))               # specials, c and ##c
    assert WordPieceTokenizer.train(texts, vocab_size=n_base + 3).vocab_size == n_base + 3
    assert WordPieceTokenizer.train(texts, 60, min_frequency=100).vocab_size == n_base


def test_train_on_the_pydoc_corpus_is_fast_and_covers_it():
    texts = [text for _, text in pydoc_documents()]
    start = time.perf_counter()
    tok = WordPieceTokenizer.train(texts, vocab_size=4000)
    assert time.perf_counter() - start < 15        # about 0.6 s here; generous for CI
    assert tok.vocab_size == 4000
    ids = tok.encode(texts[0])
    assert tok.unk_id not in ids.tolist()          # every character seen is in the vocab
    assert len(ids) < len(tok.basic_tokenize(texts[0])) * 2


def test_learn_wordpiece_vocab_merges_the_most_frequent_pair_first():
    vocab = learn_wordpiece_vocab({"ab": 5, "ac": 2}, vocab_size=5 + 6 + 1)
    assert vocab[:5] == list(SPECIAL_TOKENS)
    assert vocab[5:11] == ["a", "b", "c", "##a", "##b", "##c"]
    assert vocab[11:] == ["ab"]                       # (a, ##b) occurs 5 times, (a, ##c) twice
