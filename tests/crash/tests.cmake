# Crash and fault tests (label crash; the long variants also slow).

# --- fault injection, crash simulation ---
blobd_test(test_faults SOURCES crash/test_faults.c LABELS crash TIMEOUT 600 ONE_BACKEND)
blobd_test(test_crashsim SOURCES crash/test_crashsim.c LABELS crash TIMEOUT 600 ONE_BACKEND)
blobd_test(test_crash_async SOURCES crash/test_crash_async.c LABELS crash TIMEOUT 600 ONE_BACKEND)

# --- kill -9 ---
blobd_test(test_kill9 SOURCES crash/test_kill9.c LABELS crash TIMEOUT 900 ARGS ${BLOBD_CRASH_ROUNDS})
blobd_test_entry(test_kill9_slow test_kill9 LABELS "crash;slow" TIMEOUT 3600 ARGS 1000)
blobd_test_entry(test_kill9_async test_kill9 LABELS crash TIMEOUT 900 ARGS ${BLOBD_CRASH_ROUNDS} --async)
blobd_test_entry(test_kill9_async_uring test_kill9 URING LABELS crash TIMEOUT 900 ARGS ${BLOBD_CRASH_ROUNDS} --async)
