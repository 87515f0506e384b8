# The status page (GET /): its headers and body over HTTP
# (test_http_status, label integration) and the page itself running in
# headless Chromium (test_browser_status, label browser).

# integration/tests.cmake registers test_http_status with every
# integration/test_http_*.c; its CSP check needs nettle too.
pkg_check_modules(BLOBD_BROWSER_NETTLE REQUIRED IMPORTED_TARGET nettle)
target_link_libraries(test_http_status PRIVATE
                      PkgConfig::BLOBD_BROWSER_NETTLE)

# Headless Chromium over the DevTools protocol (python3 stdlib only).  It
# exits 77 (skipped) when no Chromium (or python3) is installed, and fails
# instead when BLOBD_NO_SKIP is set.  The screenshot goes to the test's
# output dir and to artifacts/status-page.png in the build dir.
add_test(NAME test_browser_status
         COMMAND ${blobd_py}
                 ${CMAKE_CURRENT_SOURCE_DIR}/browser/test_status_page.py
                 --out ${CMAKE_CURRENT_BINARY_DIR}/browser
                 --artifact ${CMAKE_BINARY_DIR}/artifacts/status-page.png)
set_tests_properties(test_browser_status PROPERTIES TIMEOUT 120
                     LABELS "browser" SKIP_RETURN_CODE 77
                     ENVIRONMENT "BLOBD_BIN=$<TARGET_FILE:blobd>")
