# run_fuzzer.cmake -- ctest fuzz.run.<name>: run one libFuzzer binary for CAREPASS_FUZZ_SECONDS
# (default 60) on a fresh copy of its seed corpus and regression inputs in the build directory
# (the source tree is never written), one process, and fail on any crash, leak, timeout or
# sanitizer report. Crash inputs land in WORK/artifacts/: copy one into regress/<name>/ once fixed.
#   cmake -DFUZZER=... -DNAME=... -DCORPUS=... -DREGRESS=... -DWORK=... -P run_fuzzer.cmake
set(seconds $ENV{CAREPASS_FUZZ_SECONDS})
if(NOT seconds MATCHES "^[0-9]+$")
  set(seconds 60)
endif()
file(REMOVE_RECURSE ${WORK}/corpus)
file(MAKE_DIRECTORY ${WORK}/corpus ${WORK}/artifacts)
foreach(dir ${CORPUS} ${REGRESS})
  if(IS_DIRECTORY ${dir})
    file(GLOB seeds LIST_DIRECTORIES false ${dir}/*)
    if(seeds)
      file(COPY ${seeds} DESTINATION ${WORK}/corpus)
    endif()
  endif()
endforeach()
message(STATUS "fuzz ${NAME}: ${seconds} s on ${WORK}/corpus")
execute_process(
  COMMAND ${FUZZER} -max_total_time=${seconds} -timeout=25 -rss_limit_mb=2048 -max_len=65536
          -print_final_stats=1 -artifact_prefix=${WORK}/artifacts/ ${WORK}/corpus
  WORKING_DIRECTORY ${WORK}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(GLOB found ${WORK}/artifacts/*)
  message(FATAL_ERROR "fuzz ${NAME}: the fuzzer failed (exit ${rc}); inputs: ${found}")
endif()
