# The docs' generated and checked parts (label docs), and the backup
# procedure of docs/operations.md run against a live server (label
# integration).  Included from tests/CMakeLists.txt, so paths are relative
# to tests/.

# docs/operations.md's configuration reference and alert rules are what
# scripts/gen-docs.sh generates from this blobd and deploy/prometheus/.
add_test(NAME docs_config_reference
         COMMAND ${PROJECT_SOURCE_DIR}/scripts/gen-docs.sh --check
                 --bin $<TARGET_FILE:blobd>)
set_tests_properties(docs_config_reference PROPERTIES TIMEOUT 30
                     LABELS "docs")

# python3: blobd_py (tests/CMakeLists.txt).

# Every /metrics family is documented in docs/operations.md and
# docs/api.md, every blobd_* name the docs and the alert rules use exists.
add_test(NAME docs_metrics
         COMMAND ${blobd_py} ${CMAKE_CURRENT_SOURCE_DIR}/docs/check_metrics.py
                 --top ${PROJECT_SOURCE_DIR})
set_tests_properties(docs_metrics PROPERTIES TIMEOUT 60 LABELS "docs"
                     SKIP_RETURN_CODE 77
                     ENVIRONMENT "BLOBD_BIN=$<TARGET_FILE:blobd>")

# promtool check rules / test rules on deploy/prometheus/ (skips without
# promtool, fails then under BLOBD_NO_SKIP).
add_test(NAME docs_alerts
         COMMAND ${blobd_py} ${CMAKE_CURRENT_SOURCE_DIR}/docs/check_alerts.py
                 --top ${PROJECT_SOURCE_DIR})
set_tests_properties(docs_alerts PROPERTIES TIMEOUT 60 LABELS "docs"
                     SKIP_RETURN_CODE 77)

# The hold-based backup under a live writer (C, cmocka, tests/support/srv).
blobd_itest(test_backup_hold
            SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/docs/test_backup_hold.c
            TIMEOUT 120)
# blobd-check verifies the copy, as the procedure's verification step.
if(TARGET blobd-check)
  add_dependencies(test_backup_hold blobd-check)
  set_property(TEST test_backup_hold APPEND PROPERTY ENVIRONMENT
               "BLOBD_CHECK=$<TARGET_FILE:blobd-check>")
endif()
