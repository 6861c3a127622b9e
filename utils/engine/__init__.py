"""The run engine every script shares, and the project's bottom layer: datasets/, models/, the rest of utils/ and
the scripts build on it, and it imports none of them. Errors of bad input (errors), files that survive a crash
(files: atomic writes, JSON, folder claims, the background writer), flags and error handling (flags, runtime),
precision, processes (distributed), signals (interrupts), where outputs go (layout), what they were made from
(records), checkpoints, the sample stream, and the one training loop (trainer, with the pieces in training and
run_outputs)."""
