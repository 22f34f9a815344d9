# The guest's virtio-accel driver and vAccel-named API in unifn_guest, and the accelerated example functions.
# Included by functions/CMakeLists.txt right after unifn_guest is defined.
target_sources(unifn_guest PRIVATE ${CMAKE_CURRENT_LIST_DIR}/accel.c)
# The driver finds its device through unifn_get_boot_info(), so out-of-tree images need no link flags.

find_path(UNIFN_STB_INCLUDE_DIR stb_image.h PATH_SUFFIXES stb REQUIRED
          DOC "stb_image.h and stb_image_write.h (Debian: libstb-dev)")
unifn_add_function(sgemm SOURCES ${CMAKE_CURRENT_LIST_DIR}/../examples/sgemm.c)
unifn_add_function(edges SOURCES ${CMAKE_CURRENT_LIST_DIR}/../examples/edges.c)
target_include_directories(edges SYSTEM PRIVATE ${UNIFN_STB_INCLUDE_DIR})
set(UNIFN_ACCEL_EXAMPLES sgemm edges)

# The guest `unifnd bench-accel` and the accel tests drive: installed with the functions, under bench/.
unifn_add_function(accel_probe SOURCES ${CMAKE_CURRENT_LIST_DIR}/../bench/accel_probe.c
                   OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/functions/bench)
target_include_directories(accel_probe PRIVATE ${PROJECT_SOURCE_DIR}/accel/bench)
set(UNIFN_ACCEL_PROBE_ELF ${PROJECT_BINARY_DIR}/functions/bench/accel_probe.elf PARENT_SCOPE)

# Built with the other examples (unifn_examples is defined later in the same directory).
function(_unifn_accel_examples_join)
  if(TARGET unifn_examples)
    add_dependencies(unifn_examples sgemm edges accel_probe)
  endif()
endfunction()
cmake_language(DEFER CALL _unifn_accel_examples_join)
