# blobd-check, the offline verifier (docs/check.md): stores built with the
# store API, damaged by hand, checked by the binary (label unit, so the
# sanitizer builds run them too).  The binary's path reaches the tests in
# BLOBD_CHECK.
foreach(t test_check test_check_cli)
  blobd_test(${t} SOURCES check/${t}.c check/check_testutil.c
             LABELS unit TIMEOUT 120 ONE_BACKEND)
  target_link_libraries(${t} PRIVATE PkgConfig::CJSON util)
  add_dependencies(${t} blobd-check)
  set_property(TEST ${t} APPEND PROPERTY ENVIRONMENT
               "BLOBD_CHECK=$<TARGET_FILE:blobd-check>")
endforeach()
