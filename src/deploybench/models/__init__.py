"""Model adapters: how a codebase's model is built, pre-processed and post-processed."""
