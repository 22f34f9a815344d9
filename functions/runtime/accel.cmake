# The guest's virtio-accel driver and vAccel-named API in unifn_guest, and the accelerated example functions.
# Included by functions/CMakeLists.txt right after unifn_guest is defined.
target_sources(unifn_guest PRIVATE ${CMAKE_CURRENT_LIST_DIR}/accel.c)
# The driver learns where its device is from the boot info, which it captures on the way into the
# runtime: every image linked with unifn_guest wraps unifn_rt_start.
target_link_options(unifn_guest INTERFACE -Wl,--wrap=unifn_rt_start)

find_path(UNIFN_STB_INCLUDE_DIR stb_image.h PATH_SUFFIXES stb REQUIRED
          DOC "stb_image.h and stb_image_write.h (Debian: libstb-dev)")
unifn_add_function(sgemm SOURCES ${CMAKE_CURRENT_LIST_DIR}/../examples/sgemm.c)
unifn_add_function(edges SOURCES ${CMAKE_CURRENT_LIST_DIR}/../examples/edges.c)
target_include_directories(edges SYSTEM PRIVATE ${UNIFN_STB_INCLUDE_DIR})
set(UNIFN_ACCEL_EXAMPLES sgemm edges)

# Built with the other examples (unifn_examples is defined later in the same directory).
function(_unifn_accel_examples_join)
  if(TARGET unifn_examples)
    add_dependencies(unifn_examples sgemm edges)
  endif()
endfunction()
cmake_language(DEFER CALL _unifn_accel_examples_join)
