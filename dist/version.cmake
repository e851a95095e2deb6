# The version and the commit easgate reports (easgate --version, the
# easgate_build_info metric). The version is project()'s; the commit comes
# from git when the source is a checkout, else from -DEASGATE_COMMIT=...
# (debian/rules passes the one the source tree was made from), else
# "unknown". It is read when CMake configures (every `make build`).
set(EASGATE_COMMIT "" CACHE STRING "the commit easgate was built from (default: git)")
if(NOT EASGATE_COMMIT)
  execute_process(COMMAND git rev-parse --short=12 HEAD
                  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
                  OUTPUT_VARIABLE eg_git_commit OUTPUT_STRIP_TRAILING_WHITESPACE
                  ERROR_QUIET RESULT_VARIABLE eg_git_rc)
  if(eg_git_rc EQUAL 0 AND eg_git_commit)
    set(EASGATE_COMMIT_EFFECTIVE ${eg_git_commit})
  else()
    set(EASGATE_COMMIT_EFFECTIVE unknown)
  endif()
else()
  set(EASGATE_COMMIT_EFFECTIVE ${EASGATE_COMMIT})
endif()
# Only common/version.c sees them, so a new commit recompiles one file.
set_source_files_properties(${CMAKE_SOURCE_DIR}/common/version.c PROPERTIES COMPILE_DEFINITIONS
  "EG_VERSION=\"${PROJECT_VERSION}\";EG_COMMIT=\"${EASGATE_COMMIT_EFFECTIVE}\"")
