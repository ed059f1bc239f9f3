"""Layer 0: the envelope, the topic grammar, clocks, ids and the exception tree."""
