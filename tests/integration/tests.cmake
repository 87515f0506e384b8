# Integration tests (label integration): a real blobd on 127.0.0.1 port 0,
# driven with libcurl, one CTest entry per area.

# blobd_itest(<name> SOURCES <files...> [TIMEOUT <s>] [BIN blobd|blobd-test]
#             [LABELS ...])
# BLOBD_BIN names the server binary; blobd-test carries the test-only fault
# endpoint (see server/testhooks.c).
function(blobd_itest name)
  cmake_parse_arguments(T "" "TIMEOUT;BIN" "SOURCES;LABELS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  if(NOT T_BIN)
    set(T_BIN blobd)
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE blobd_testhttp)
  add_dependencies(${name} ${T_BIN})
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT}
                       LABELS "integration;${T_LABELS}"
                       ENVIRONMENT "BLOBD_BIN=$<TARGET_FILE:${T_BIN}>")
endfunction()

add_library(blobd_testhttp STATIC support/srv.c)
target_include_directories(blobd_testhttp PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/support)
target_link_libraries(blobd_testhttp PUBLIC blobd_testsupport blobd_api PkgConfig::CURL)

file(GLOB BLOBD_ITESTS ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_http_*.c)
foreach(src ${BLOBD_ITESTS})
  get_filename_component(name ${src} NAME_WE)
  set(bin blobd)
  # Tests that drive the fault endpoint run the test build of the server.
  if(name MATCHES "_faults$")
    set(bin blobd-test)
  endif()
  blobd_itest(${name} SOURCES ${src} BIN ${bin} TIMEOUT 300)
endforeach()
