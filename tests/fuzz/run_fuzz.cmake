# Runs one libFuzzer target for a bounded time (the fuzz_<target> tests):
#   cmake -DFUZZER=<binary> -DCORPUS=<dir> -DREGRESS=<dir> -DDICT=<file>
#         -DWORK=<dir in the build tree> -DSECONDS=<n> -P run_fuzz.cmake
# The seeds are copied into WORK first (libFuzzer adds what it finds to
# its first corpus directory: never the source tree).  Any crash, leak,
# sanitizer report, timeout (-timeout=10: a hang) or out-of-memory
# (-rss_limit_mb=2048) makes libFuzzer exit non-zero, and the test fail;
# the input is left in WORK/artifacts/.
foreach(v FUZZER CORPUS REGRESS WORK SECONDS)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run_fuzz.cmake: ${v} is not set")
  endif()
endforeach()

file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/corpus ${WORK}/regress ${WORK}/artifacts)
foreach(pair "CORPUS;corpus" "REGRESS;regress")
  list(GET pair 0 from)
  list(GET pair 1 to)
  file(GLOB seeds LIST_DIRECTORIES false ${${from}}/*)
  foreach(s ${seeds})
    get_filename_component(name ${s} NAME)
    if(NOT name MATCHES "^\\.")
      file(COPY ${s} DESTINATION ${WORK}/${to})
    endif()
  endforeach()
endforeach()

set(args -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048
    -print_final_stats=1 -artifact_prefix=${WORK}/artifacts/)
if(DEFINED DICT AND EXISTS ${DICT})
  list(APPEND args -dict=${DICT})
endif()
string(REPLACE ";" " " shown "${args}")
message(STATUS "${FUZZER} ${shown} ${WORK}/corpus ${WORK}/regress")
execute_process(COMMAND ${FUZZER} ${args} ${WORK}/corpus ${WORK}/regress
                WORKING_DIRECTORY ${WORK}
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(GLOB found ${WORK}/artifacts/*)
  string(REPLACE ";" " " found "${found}")
  message(FATAL_ERROR "libFuzzer exited with ${rc}; the input: ${found} "
                      "(tests/fuzz/README.md: from a crash to a regression)")
endif()
