# Unit tests of the store (label unit).  One executable per module or
# concern; each runs in its own temp dir.

# --- support self-tests (faultio, crashio) ---
blobd_test(test_support_io SOURCES unit/test_support_io.c LABELS unit TIMEOUT 60 ONE_BACKEND)

# --- seed counterparts ---
blobd_test(test_store_seed SOURCES unit/test_store_seed.c LABELS unit TIMEOUT 120)

# --- store: format, replay, index ---
blobd_test(test_replay SOURCES unit/test_replay.c LABELS unit TIMEOUT 300)
blobd_test(test_direct SOURCES unit/test_direct.c LABELS unit TIMEOUT 60 ONE_BACKEND)
blobd_test(test_index SOURCES unit/test_index.c LABELS unit TIMEOUT 300 ONE_BACKEND)
blobd_test(test_io_uring SOURCES unit/test_io_uring.c LABELS unit TIMEOUT 60 ONE_BACKEND)

blobd_test(test_backend SOURCES unit/test_backend.c LABELS unit TIMEOUT 60 ONE_BACKEND)

# --- concurrency, lock ---
blobd_test(test_concurrency SOURCES unit/test_concurrency.c LABELS unit TIMEOUT 120)
blobd_test(test_lock SOURCES unit/test_lock.c LABELS unit TIMEOUT 120)
blobd_test(test_async SOURCES unit/test_async.c LABELS unit TIMEOUT 180)

# --- api: the socket-free HTTP logic ---
blobd_test(test_api SOURCES unit/test_api.c LABELS unit TIMEOUT 60 ONE_BACKEND)
target_link_libraries(test_api PRIVATE blobd_api)
blobd_test(test_api_obs SOURCES unit/test_api_obs.c LABELS unit TIMEOUT 60 ONE_BACKEND)
target_link_libraries(test_api_obs PRIVATE blobd_api)
