# Post-build check of the sandbox helper (cmake -DHELPER=file -DREADELF=readelf -P check_helper.cmake):
# a static PIE without an interpreter and without dynamic relocations, since nothing would apply them.
execute_process(COMMAND ${READELF} -W -r -l ${HELPER} OUTPUT_VARIABLE out RESULT_VARIABLE rc)
set(problem "")
if(NOT rc EQUAL 0)
  set(problem "readelf failed")
elseif(NOT out MATCHES "There are no relocations in this file")
  set(problem "it has dynamic relocations (a pointer in initialised data?)")
elseif(out MATCHES "INTERP")
  set(problem "it asks for a dynamic linker")
elseif(NOT out MATCHES "Elf file type is DYN")
  set(problem "it is not a static PIE")
endif()
if(problem)
  file(REMOVE ${HELPER})  # so that the next build tries again instead of embedding it
  message(FATAL_ERROR "sandbox helper ${HELPER}: ${problem}\n${out}")
endif()
