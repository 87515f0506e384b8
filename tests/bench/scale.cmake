# Scale benchmark (scale.py): the synthetic store generator.  It writes the
# manifest with the store's own encoder, so it reaches into store/.
add_executable(gen_store ${CMAKE_CURRENT_SOURCE_DIR}/gen_store.c)
target_link_libraries(gen_store PRIVATE blobd_store)
target_include_directories(gen_store PRIVATE ${PROJECT_SOURCE_DIR}/store)
set_target_properties(gen_store PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                      ${CMAKE_BINARY_DIR}/tests)
