# deploy/ run for real (label deploy): the container image's build and
# install steps, its Dockerfile and compose file, the seccomp profile
# loaded into the kernel in front of blobd, and the systemd units.  Each
# test is a script that exits 77 to skip (and fails instead of skipping
# when BLOBD_NO_SKIP is set).

# python3: blobd_py (tests/CMakeLists.txt).

# blobd_deploy_test(<name> <script> TIMEOUT <s> [ENV <NAME=value...>])
function(blobd_deploy_test name script)
  cmake_parse_arguments(T "" "TIMEOUT" "ENV" ${ARGN})
  add_test(NAME ${name}
           COMMAND ${blobd_py} ${CMAKE_CURRENT_SOURCE_DIR}/deploy/${script})
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT}
                       LABELS "deploy" SKIP_RETURN_CODE 77
                       ENVIRONMENT "BLOBD_BIN=$<TARGET_FILE:blobd>;${T_ENV}")
endfunction()

# The loader that puts deploy/seccomp/blobd.json in front of a command.
pkg_check_modules(SECCOMP IMPORTED_TARGET libseccomp)
if(SECCOMP_FOUND)
  add_executable(seccomp_run deploy/seccomp_run.c)
  target_link_libraries(seccomp_run PRIVATE PkgConfig::SECCOMP PkgConfig::CJSON)
  set(BLOBD_SECCOMP_RUN "$<TARGET_FILE:seccomp_run>")
else()
  set(BLOBD_SECCOMP_RUN "")
endif()

# The image's build steps, from the source tree, into a temporary root
# (a full build of blobd: the slowest of these, about 15 s).
blobd_deploy_test(container_build container_build.py TIMEOUT 300
                  ENV "BLOBD_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
                      "BLOBD_SECCOMP_RUN=${BLOBD_SECCOMP_RUN}")
blobd_deploy_test(container_dockerfile container_dockerfile.py TIMEOUT 30)
blobd_deploy_test(container_compose container_compose.py TIMEOUT 30)
blobd_deploy_test(seccomp_profile seccomp_profile.py TIMEOUT 120
                  ENV "BLOBD_SECCOMP_RUN=${BLOBD_SECCOMP_RUN}")
blobd_deploy_test(systemd_units systemd_units.py TIMEOUT 120
                  ENV "BLOBD_SECCOMP_RUN=${BLOBD_SECCOMP_RUN}")
# Both run blobd as the image's and the unit's user (uid 10001), and the
# kernel counts locked memory per user: one at a time, so that each sees
# the registered buffers its own limit allows.
if(TEST container_build AND TEST systemd_units)
  set_tests_properties(container_build systemd_units PROPERTIES
                       RESOURCE_LOCK blobd_uid_10001)
endif()

# nginx configurations
# deploy/nginx/ with the system's nginx (and its njs module for the
# sharded one), the shipped files with only their "# site:" values
# replaced: one blobd behind blobd-proxy.conf, three behind
# blobd-sharded.conf.  A few seconds each.
blobd_deploy_test(nginx_proxy nginx_proxy.py TIMEOUT 120)
blobd_deploy_test(nginx_sharded nginx_sharded.py TIMEOUT 120)
