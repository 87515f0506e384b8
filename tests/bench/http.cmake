# HTTP benchmark harness (http_bench.py): its helper programs.
#   mhd_ref    a bare libmicrohttpd server answering from memory
#   flush_raw  the syscalls of one blobd flush, timed raw
add_executable(mhd_ref ${CMAKE_CURRENT_SOURCE_DIR}/mhd_ref.c)
target_link_libraries(mhd_ref PRIVATE PkgConfig::MHD Threads::Threads)
set_target_properties(mhd_ref PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                      ${CMAKE_BINARY_DIR}/tests)

add_executable(flush_raw ${CMAKE_CURRENT_SOURCE_DIR}/flush_raw.c)
set_target_properties(flush_raw PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                      ${CMAKE_BINARY_DIR}/tests)
