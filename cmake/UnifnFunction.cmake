# unifn_add_function(NAME SOURCES src.c ... [OUTPUT_DIRECTORY dir] [LIBS lib ...])
# Builds NAME.elf: a unifn unikernel image of the C sources, musl's libc.a and the unifn runtime.
# Works in this source tree and, after `cmake --install`, from any project that does
# include(/usr/lib/unifn/cmake/UnifnFunction.cmake) (or the installed prefix's equivalent).
set(UNIFN_MUSL_SPECS /usr/lib/x86_64-linux-musl/musl-gcc.specs CACHE FILEPATH "musl-gcc specs file")
if(NOT EXISTS ${UNIFN_MUSL_SPECS})
  message(FATAL_ERROR "unifn functions need musl: ${UNIFN_MUSL_SPECS} is missing (apt-get install musl-tools musl-dev)")
endif()

# Compile and link flags for guest code: static, non-PIE, musl instead of glibc, linked at 1 MiB.
set(UNIFN_GUEST_COMPILE_OPTIONS -specs=${UNIFN_MUSL_SPECS} -O2 -g -fno-pie -fno-plt -fno-stack-protector
    -Wall -Wextra -Werror)
set(UNIFN_GUEST_LINK_OPTIONS -specs=${UNIFN_MUSL_SPECS} -static -no-pie -nostartfiles
    -Wl,-Ttext-segment=0x100000 -Wl,-z,max-page-size=0x1000 -Wl,-z,noexecstack -Wl,--build-id=none)

if(NOT UNIFN_IN_TREE AND NOT TARGET unifn_guest)
  # Installed layout: this file in <prefix>/lib/unifn/cmake, the runtime beside it.
  get_filename_component(_unifn_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
  add_library(unifn_guest STATIC IMPORTED)
  set_target_properties(unifn_guest PROPERTIES
    IMPORTED_LOCATION ${_unifn_prefix}/lib/unifn/libunifn_guest.a
    INTERFACE_INCLUDE_DIRECTORIES ${_unifn_prefix}/include)
endif()

function(unifn_add_function name)
  cmake_parse_arguments(F "" "OUTPUT_DIRECTORY" "SOURCES;LIBS" ${ARGN})
  if(NOT F_SOURCES)
    message(FATAL_ERROR "unifn_add_function(${name}) needs SOURCES")
  endif()
  if(NOT F_OUTPUT_DIRECTORY)
    set(F_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/functions)
  endif()
  add_executable(${name} ${F_SOURCES})
  target_compile_options(${name} PRIVATE ${UNIFN_GUEST_COMPILE_OPTIONS})
  target_link_options(${name} PRIVATE ${UNIFN_GUEST_LINK_OPTIONS})
  # The whole runtime goes in: _start and the ABI note are referenced by nothing else.
  target_link_libraries(${name} PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,unifn_guest>" ${F_LIBS})
  set_target_properties(${name} PROPERTIES SUFFIX ".elf" RUNTIME_OUTPUT_DIRECTORY ${F_OUTPUT_DIRECTORY}
    POSITION_INDEPENDENT_CODE OFF)
endfunction()
