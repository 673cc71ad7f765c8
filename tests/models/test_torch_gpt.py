"""Our GPT against the same model in PyTorch autograd: logits and every gradient."""

import numpy as np
import pytest

from npfm.functional import cross_entropy_backward, cross_entropy_forward
from npfm.models.gpt import GPT, generate, preset

torch = pytest.importorskip("torch")
from npfm.torch_twins.torch_gpt import TorchGPT  # noqa: E402


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_logits_and_gradients_match_pytorch(positions):
    config = preset("tiny", vocab_size=23, context=8, positions=positions)
    model = GPT(config, seed=2).astype(np.float64)
    ref = TorchGPT(config, dtype=torch.float64).load_npfm(model)
    ids = np.random.default_rng(0).integers(0, 23, size=(3, 8))
    ids[:, 0] = 5                                                    # repeated ids
    logits = model(ids[:, :-1])
    loss, cache = cross_entropy_forward(logits, ids[:, 1:])
    model.zero_grad()
    model.backward(cross_entropy_backward(1.0, cache))

    t_logits = ref(torch.from_numpy(ids[:, :-1]))
    t_loss = torch.nn.functional.cross_entropy(t_logits.reshape(-1, 23), torch.from_numpy(ids[:, 1:]).reshape(-1))
    t_loss.backward()
    np.testing.assert_allclose(logits, t_logits.detach().numpy(), atol=1e-10, rtol=0)
    assert abs(float(loss) - t_loss.item()) < 1e-12
    grads = ref.named_npfm_grads()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, grads[name].numpy(), atol=1e-10, rtol=0, err_msg=name)


def test_kv_cache_generation_matches_pytorch():
    config = preset("tiny", vocab_size=19, context=8)
    model = GPT(config, seed=4).astype(np.float64)
    ref = TorchGPT(config, dtype=torch.float64).load_npfm(model)
    prompt = np.array([3, 1, 4])
    _, ours = generate(model, prompt, 4, temperature=0, return_logits=True)
    caches = [[None, None] for _ in range(config.n_layers)]
    with torch.no_grad():
        logits = ref(torch.from_numpy(prompt[None]), caches)[0, -1]
        for step in range(4):
            np.testing.assert_allclose(ours[step], logits.numpy(), atol=1e-10)
            nxt = int(logits.argmax())
            logits = ref(torch.tensor([[nxt]]), caches)[0, -1]
