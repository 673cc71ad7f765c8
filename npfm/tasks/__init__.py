"""What each model brings to the shared training loop: batches, loss, metrics, data adapters."""
