"""The run engine every script shares: flags and error handling (runtime), precision, processes (distributed),
signals (interrupts), where outputs go (layout), what they were made from (records), checkpoints, the sample
stream, and the one training loop (trainer, with the pieces in training and run_outputs)."""
