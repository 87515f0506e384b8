#!/bin/sh
# Runs blobd under valgrind memcheck for the integration tests' valgrind
# entries (label slow): BLOBD_REAL_BIN names the server, and the pread
# backend is asked for first because valgrind does not see the kernel
# fill buffers through io_uring (a flag the test gives itself still wins).
# Any memcheck error makes the exit status 99, which fails the test's
# srv_stop; definite leaks count as errors.
exec valgrind --quiet --error-exitcode=99 --leak-check=full \
  --errors-for-leak-kinds=definite --show-leak-kinds=definite \
  --child-silent-after-fork=yes \
  "$BLOBD_REAL_BIN" --backend pread "$@"
