import numpy as np
import pytest

from npfm.tokenizers.bert_pairs import pack_pair, truncate_longest_first


def test_truncation_is_longest_first_from_the_end():
    assert truncate_longest_first([1, 2, 3, 4, 5], [6, 7], 5) == ([1, 2, 3], [6, 7])
    assert truncate_longest_first([1, 2, 3], [4, 5, 6], 4) == ([1, 2], [4, 5])
    assert truncate_longest_first([1, 2, 3], [4, 5, 6], 3) == ([1, 2], [4])   # a tie cuts b
    assert truncate_longest_first([1, 2, 3], None, 2) == ([1, 2], None)


def test_pack_pair_lays_out_cls_a_sep_b_sep_and_padding():
    ids, segments, mask = pack_pair([5, 6, 7], [8, 9], 10, cls_id=2, sep_id=3, pad_id=0)
    np.testing.assert_array_equal(ids, [2, 5, 6, 7, 3, 8, 9, 3, 0, 0])
    np.testing.assert_array_equal(segments, [0, 0, 0, 0, 0, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(mask, [1, 1, 1, 1, 1, 1, 1, 1, 0, 0])
    assert ids.dtype == segments.dtype == mask.dtype == np.int32
    ids, segments, mask = pack_pair([5], None, 4, cls_id=2, sep_id=3, pad_id=0)
    np.testing.assert_array_equal(ids, [2, 5, 3, 0])
    assert not segments.any() and mask.tolist() == [1, 1, 1, 0]


def test_pack_pair_and_truncation_refuse_what_does_not_fit():
    with pytest.raises(ValueError, match="truncate first"):
        pack_pair([1, 2, 3], [4], 5, cls_id=0, sep_id=0, pad_id=0)
    with pytest.raises(ValueError, match="budget"):
        truncate_longest_first([1], [2], -1)
