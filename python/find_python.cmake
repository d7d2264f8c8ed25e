# Finds what the Python package's native module (python/CMakeLists.txt) needs: a
# Python 3 interpreter with its headers and numpy, and pybind11. Sets
# ATTNRANK_PYTHON_FOUND. Included from the top-level CMakeLists.txt before any
# target exists, because the library must then be built position-independent.
set(ATTNRANK_PYTHON_FOUND FALSE)
# An ASan-instrumented module cannot load into an uninstrumented python3, and a
# cross-built one not into the build machine's.
if(ATTNRANK_SANITIZE OR CMAKE_CROSSCOMPILING)
  return()
endif()
# The interpreter the tests run with must import numpy: the first `python3` on PATH
# may be a bare one (pyenv, say) next to the system's, which has the packages.
# -DPython3_EXECUTABLE=... picks one by hand.
if(NOT Python3_EXECUTABLE)
  find_program(ATTNRANK_PATH_PYTHON python3 NO_CACHE)
  foreach(candidate ${ATTNRANK_PATH_PYTHON} /usr/bin/python3)
    if(EXISTS ${candidate})
      execute_process(COMMAND ${candidate} -c "import numpy" RESULT_VARIABLE status
                      OUTPUT_QUIET ERROR_QUIET)
      if(status EQUAL 0)
        set(Python3_EXECUTABLE ${candidate} CACHE FILEPATH "Python 3 interpreter (imports numpy)")
        break()
      endif()
    endif()
  endforeach()
endif()
find_package(Python3 COMPONENTS Interpreter Development.Module QUIET)
if(Python3_FOUND)
  find_package(pybind11 CONFIG QUIET)
endif()
if(Python3_FOUND AND pybind11_FOUND)
  set(ATTNRANK_PYTHON_FOUND TRUE)
endif()
