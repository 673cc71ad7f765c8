from npfm.tokenizers.bert_basic import basic_tokenize, remove_accents, split_on_punctuation


def test_basic_tokenizer_as_bert():
    text = " \tHeLLo!how  \n Are yoU?  "
    assert basic_tokenize(text) == ["hello", "!", "how", "are", "you", "?"]
    assert basic_tokenize(text, lowercase=False) == ["HeLLo", "!", "how", "Are", "yoU", "?"]
    accented = " \tHäLLo!how  \n Are yoU?  "
    assert basic_tokenize(accented)[0] == "hallo"                      # accents follow lowercase
    assert basic_tokenize(accented, strip_accents=False)[0] == "hällo"
    assert basic_tokenize(accented, lowercase=False, strip_accents=True)[0] == "HaLLo"
    assert basic_tokenize("ah\u535A\u63A8zz") == ["ah", "\u535A", "\u63A8", "zz"]  # CJK alone
    assert basic_tokenize("a\x00b\ufffdc\u200bd\x07e") == ["abcde"]    # NUL, U+FFFD, Cf, Cc
    assert basic_tokenize("$5^2`x|y~z ¿qué?") == ["$", "5", "^", "2", "`", "x", "|", "y", "~",
                                                  "z", "¿", "que", "?"]
    assert basic_tokenize("a\u00a0b\u3000c") == ["a", "b", "c"]          # Zs is whitespace


def test_accents_and_punctuation_pieces():
    assert remove_accents("café naïve") == "cafe naive"
    assert split_on_punctuation("don't!") == ["don", "'", "t", "!"]
    assert split_on_punctuation("...") == [".", ".", "."]
