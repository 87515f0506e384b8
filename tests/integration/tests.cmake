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

add_library(blobd_testhttp STATIC support/srv.c support/load.c)
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
  set(timeout 300)
  if(name STREQUAL "test_http_powerloss")
    set(timeout 600)
  endif()
  blobd_itest(${name} SOURCES ${src} BIN ${bin} TIMEOUT ${timeout})
endforeach()

# blobd_itest_more(<name> <exe> TIMEOUT <s> LABELS <...> ENV <NAME=value...>)
# Another CTest entry for an itest's executable, with more environment.
function(blobd_itest_more name exe)
  cmake_parse_arguments(T "" "TIMEOUT" "LABELS;ENV" ${ARGN})
  add_test(NAME ${name} COMMAND ${exe})
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT}
                       LABELS "integration;${T_LABELS}"
                       ENVIRONMENT "BLOBD_BIN=$<TARGET_FILE:blobd>;${T_ENV}")
endfunction()

# kill -9 and power loss under load: more rounds under slow (the default
# entries read BLOBD_KILL_ROUNDS / BLOBD_POWER_CUTS from the environment,
# 50 and 20 without it).
blobd_itest_more(test_http_kill_slow test_http_kill TIMEOUT 1800
                 LABELS slow ENV BLOBD_KILL_ROUNDS=300)
blobd_itest_more(test_http_powerloss_slow test_http_powerloss TIMEOUT 2400
                 LABELS slow ENV BLOBD_POWER_CUTS=100)

# valgrind memcheck over the server in the functional HTTP tests (label
# slow; the pread backend: io_uring fills buffers behind valgrind's back).
# A memcheck error exits the server with 99, which fails the test.
find_program(BLOBD_VALGRIND valgrind)
if(BLOBD_VALGRIND)
  foreach(t put get range list cond flush auth access admin status)
    add_test(NAME test_http_${t}_valgrind COMMAND test_http_${t})
    set_tests_properties(test_http_${t}_valgrind PROPERTIES TIMEOUT 900
      LABELS "integration;slow;valgrind"
      ENVIRONMENT "BLOBD_BIN=${CMAKE_CURRENT_SOURCE_DIR}/support/valgrind_blobd.sh;BLOBD_REAL_BIN=$<TARGET_FILE:blobd>")
  endforeach()
endif()
