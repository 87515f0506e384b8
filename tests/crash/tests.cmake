# Crash and fault tests (label crash; the long variants also slow).

# --- fault injection, crash simulation ---

# --- kill -9 ---
