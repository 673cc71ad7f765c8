"""The text-to-image objective: the stream's layout, inputs and targets, the
weighted loss and its gradient, and the loss as a Module."""

import math

import numpy as np

from npfm.functional.cross_entropy import cross_entropy_forward
from npfm.gradcheck import check_pair
from npfm.models.dalle import DALLE, preset
from npfm.models.dalle_loss import (IGNORE, TextImageLoss, inputs_and_targets, make_stream,
                                    text_image_loss_backward, text_image_loss_forward)

TINY = preset("tiny")        # Vt 7, L 3, K 5, a 2 x 2 grid: T = 4 + 4 = 8, V = 14


def test_stream_layout_and_joint_vocabulary():
    c = TINY
    assert (c.bos_id, c.sep_id, c.code_offset, c.vocab_size) == (7, 8, 9, 14)
    assert (c.n_text_positions, c.n_image_tokens, c.context) == (4, 4, 8)
    stream = make_stream(np.array([[4, 1, 0]]), np.array([[[0, 1], [2, 4]]]), c)
    np.testing.assert_array_equal(stream, [[7, 4, 1, 0, 8, 9, 10, 11, 13]])
    inputs, targets = inputs_and_targets(stream, c)
    np.testing.assert_array_equal(inputs, [[7, 4, 1, 0, 8, 9, 10, 11]])
    # [PAD] and [SEP] targets are not counted; the word, [EOT] and every code are
    np.testing.assert_array_equal(targets, [[4, 1, IGNORE, IGNORE, 9, 10, 11, 13]])


def test_loss_weights_the_parts_one_eighth_and_seven_eighths():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 6, 5))
    targets = rng.integers(0, 5, (2, 6))
    targets[0, 1] = IGNORE
    loss, _ = text_image_loss_forward(logits, targets, n_text=2, text_weight=1 / 8)
    text, _ = cross_entropy_forward(logits[:, :2], targets[:, :2], IGNORE)
    image, _ = cross_entropy_forward(logits[:, 2:], targets[:, 2:], IGNORE)
    assert math.isclose(float(loss), float(text) / 8 + 7 * float(image) / 8, rel_tol=1e-12)
    errors = check_pair(lambda z: text_image_loss_forward(z, targets, 2), text_image_loss_backward,
                        [logits], dy=np.array(1.7))
    assert errors[0] < 1e-8


def test_the_loss_module_reports_its_two_parts():
    stream = make_stream(np.array([[4, 1, 0], [5, 6, 3]]), np.array([[0, 1, 2, 4], [3, 3, 0, 1]]),
                         TINY)
    objective = TextImageLoss(DALLE(TINY, seed=0))
    loss = objective(stream)
    assert math.isclose(float(loss), objective.text_loss / 8 + 7 * objective.image_loss / 8,
                        rel_tol=1e-6)
    assert objective.image_loss > 0 and objective.text_loss > 0
