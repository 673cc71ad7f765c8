"""npfm.fast.threads: row blocks on threads give the same numbers as one call."""

import multiprocessing
import sys
import threading

import numpy as np
import pytest

import npfm.fast.threads as parallel
from npfm.functional import (attention_backward, attention_forward, causal_mask,
                             cross_entropy_backward, cross_entropy_forward, gelu_backward,
                             gelu_forward, layernorm_backward, layernorm_forward)
from npfm.gradcheck import check_pair
from npfm.models.gpt import GPT, preset
from npfm.fast.threads import map_rows, run_in_parallel, set_num_threads
import npfm.fast.attention as fast_attention
import npfm.fast.linear as fast_linear


@pytest.fixture
def threads():
    """Run a test with a chosen number of threads, then restore the default."""
    previous = parallel.num_threads()
    yield set_num_threads
    set_num_threads(previous)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 64 elements: even tiny test arrays take the many-block path."""
    monkeypatch.setattr(parallel, "BLOCK_ELEMENTS", 64)


def _square_rows(x, y):
    np.multiply(x, x, out=y)
    return x.sum(axis=0), y.sum(axis=0)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_map_rows_matches_one_call_bit_for_bit(threads, n_threads):
    threads(n_threads)
    x = np.random.default_rng(0).standard_normal((101, 7))
    y = np.empty_like(x)
    calls = []

    def fn(x, y):
        calls.append(len(x))
        return _square_rows(x, y)

    sx, sy = map_rows(fn, x, y, block_elements=70)          # 10 rows per block
    assert sorted(calls) == [1] + [10] * 10                 # 11 blocks, every row once
    np.testing.assert_array_equal(y, x * x)
    np.testing.assert_allclose(sx, x.sum(axis=0), rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(sy, (x * x).sum(axis=0), rtol=1e-13, atol=1e-12)
    # sums are added in block order, so any number of threads gives the same bits
    set_num_threads(1)
    sx1, sy1 = map_rows(_square_rows, x, np.empty_like(x), block_elements=70)
    np.testing.assert_array_equal(sx, sx1)
    np.testing.assert_array_equal(sy, sy1)


def test_map_rows_small_input_is_one_direct_call():
    x = np.ones((4, 3))
    seen = []
    assert map_rows(lambda a: seen.append(a) or None, x) is None
    assert len(seen) == 1 and seen[0] is x


def test_map_rows_rejects_arrays_of_different_lengths():
    with pytest.raises(ValueError, match="different lengths on axis 0"):
        map_rows(lambda a, b: None, np.ones((10, 4)), np.ones((9, 4)), block_elements=8)


def test_an_error_in_a_worker_thread_reaches_the_caller(threads):
    threads(2)
    x = np.arange(40.0).reshape(20, 2)

    def fn(block):
        if block[0, 0] >= 30:                                # a block run by the second thread
            raise ValueError("bad block")

    with pytest.raises(ValueError, match="bad block"):
        map_rows(fn, x, block_elements=2)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_nested_map_rows_gives_the_same_bits_without_deadlock(threads, n_threads):
    threads(n_threads)
    x = np.random.default_rng(1).standard_normal((64, 4))
    y, want = np.empty_like(x), np.empty_like(x)

    def outer(x, y):
        return map_rows(_square_rows, x, y, block_elements=4)   # blocks inside a block

    got = map_rows(outer, x, y, block_elements=16)
    threads(1)
    sums = [map_rows(_square_rows, x[i:i + 4], want[i:i + 4], block_elements=4) for i in range(0, 64, 4)]
    np.testing.assert_array_equal(y, want)
    for total, parts in zip(got, zip(*sums)):                 # the inner blocks' sums, as alone
        np.testing.assert_array_equal(total, sum(parts[1:], parts[0].copy()))


def test_a_nested_call_uses_only_threads_that_are_free(threads):
    threads(2)
    both_busy = threading.Barrier(2, timeout=10)
    seen = []

    def task():
        both_busy.wait()                                     # each of the two threads runs a task
        seen.append((threading.get_ident(),
                     run_in_parallel(threading.get_ident, threading.get_ident)))

    outer = threading.Thread(target=run_in_parallel, args=(task, task), daemon=True)
    outer.start()
    outer.join(timeout=30)
    assert not outer.is_alive(), "a nested call waited for a busy thread: deadlock"
    assert len(seen) == 2 and seen[0][0] != seen[1][0]
    for me, nested in seen:
        assert nested == [me, me]                            # no free thread: both calls here, in turn


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_run_in_parallel_returns_each_result_in_order(threads, n_threads):
    threads(n_threads)
    a = np.random.default_rng(2).standard_normal((300, 200)).astype(np.float32)
    calls = [lambda: a @ a.T, lambda: a.T @ a, lambda: 3, lambda: a.sum(axis=0)]
    results = run_in_parallel(*calls)
    assert results[2] == 3
    # every call runs on one BLAS thread, whatever the number of ours: OpenBLAS
    # may round a product differently on two (seen with this a @ a.T)
    blas = parallel._blas_threads()
    previous = blas[0]() if blas else None
    if blas:
        blas[1](1)
    try:
        alone = [call() for call in calls]
    finally:
        if blas:
            blas[1](previous)
    for got, want in zip(results, alone):
        np.testing.assert_array_equal(got, want)           # the same bits as a call alone


def test_run_in_parallel_passes_on_an_error_also_inside_a_block(threads):
    threads(2)

    def fail():
        raise ValueError("bad call")

    with pytest.raises(ValueError, match="bad call"):
        run_in_parallel(lambda: 1, fail)
    seen = []

    def block(rows):
        seen.append(run_in_parallel(lambda: 1, lambda: 2))
        if rows[0, 0] == 7:
            run_in_parallel(lambda: 1, fail)

    rows = np.arange(8.0)[:, None] * np.ones((8, 4))
    with pytest.raises(ValueError, match="bad call"):
        map_rows(block, rows, block_elements=4)
    assert seen.count([1, 2]) >= 1 and all(s == [1, 2] for s in seen)


def test_thread_settings_are_checked(monkeypatch):
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="positive integer"):
            set_num_threads(bad)
    monkeypatch.setenv("NPFM_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="NPFM_NUM_THREADS must be a positive integer"):
        parallel._default_threads()
    monkeypatch.setenv("NPFM_NUM_THREADS", "3")
    assert parallel._default_threads() == 3


def _square_in_child(n):
    x = np.arange(float(n)).reshape(-1, 2)
    y = np.empty_like(x)
    map_rows(_square_rows, x, y, block_elements=4)
    return float(y.sum())


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_a_forked_child_gets_its_own_threads(threads):
    threads(2)
    _square_in_child(40)                                     # the parent's pool exists now
    with multiprocessing.get_context("fork").Pool(1) as pool:
        result = pool.apply_async(_square_in_child, (40,)).get(timeout=60)
    assert result == float((np.arange(40.0) ** 2).sum())


# ----- the layers that use it: many blocks, same numbers, same gradients -------

def _layer_outputs():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 5, 8))
    gamma, beta = rng.standard_normal(8), rng.standard_normal(8)
    q, k, v = (rng.standard_normal((3, 2, 5, 4)) for _ in range(3))
    dy = rng.standard_normal((3, 5, 8))
    out = {}
    y, cache = gelu_forward(x)
    out["gelu"] = (y, gelu_backward(dy, cache))
    y, cache = gelu_forward(x, approximate="none")
    out["gelu exact"] = (y, gelu_backward(dy, cache))
    y, cache = layernorm_forward(x, gamma, beta)
    out["layernorm"] = (y, *layernorm_backward(dy, cache))
    y, cache = attention_forward(q, k, v, causal_mask(5))
    out["attention"] = (y, *attention_backward(q[..., ::-1, :], cache))
    targets = rng.integers(0, 8, size=(3, 5))
    targets[0, 1] = -100                                     # an ignored position
    loss, cache = cross_entropy_forward(x, targets)
    out["cross-entropy"] = (np.array(loss), cross_entropy_backward(1.0, cache))
    return out


def test_layers_give_the_same_numbers_in_many_blocks_on_threads(threads, monkeypatch):
    threads(1)
    monkeypatch.setattr(parallel, "BLOCK_ELEMENTS", 1 << 30)
    whole = _layer_outputs()
    threads(3)
    monkeypatch.setattr(parallel, "BLOCK_ELEMENTS", 16)
    blocked = _layer_outputs()
    for name in whole:
        for a, b in zip(whole[name], blocked[name]):
            # row-wise results are identical; sums over rows (dgamma, dbeta) may
            # differ in the last bits because they are added block by block
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13, err_msg=name)


def test_gradients_are_right_in_many_blocks(threads, small_blocks):
    threads(2)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6, 5))
    errors = check_pair(layernorm_forward, layernorm_backward,
                        [x, rng.standard_normal(5), rng.standard_normal(5)])
    errors.update({f"gelu {k}": e for k, e in check_pair(gelu_forward, gelu_backward, [x]).items()})
    q, k, v = (rng.standard_normal((4, 2, 6, 3)) for _ in range(3))
    errors.update({f"attention {i}": e for i, e in check_pair(
        attention_forward, attention_backward, [q, k, v], mask=causal_mask(6)).items()})
    assert max(errors.values()) < 1e-6, errors


def test_gpt_training_step_is_identical_with_one_thread_or_two(threads, monkeypatch):
    monkeypatch.setattr(parallel, "BLOCK_ELEMENTS", 256)     # many blocks even at this size
    monkeypatch.setattr(fast_linear, "PAIR_WORK", 0)         # every Linear's dx and dW in parallel
    monkeypatch.setattr(fast_attention, "CAUSAL_CHUNK", 5)   # causal queries in chunks (T = 16)
    config = preset("tiny")
    ids = np.random.default_rng(4).integers(0, config.vocab_size, size=(8, config.context))
    grads = []
    for n in (1, 2):
        threads(n)
        model = GPT(config)
        model.zero_grad()
        logits = model(ids)
        model.backward(np.cos(logits))                       # any fixed upstream gradient
        grads.append([p.grad.copy() for p in model.parameters()])
    for g1, g2 in zip(*grads):
        np.testing.assert_array_equal(g1, g2)
