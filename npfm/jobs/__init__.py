"""Jobs: what each model brings to the shared loop, and its commands."""
