# Unit tests of the store (label unit).  One executable per module or
# concern; each runs in its own temp dir.

# --- support self-tests (faultio, crashio) ---

# --- seed counterparts ---

# --- store: format, replay, index ---

# --- concurrency, lock ---
