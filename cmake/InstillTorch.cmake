# Locate LibTorch for instill. Order (ARCHITECTURE.md, "Take the ABI from Torch"):
#   1. LIBTORCH (an unpacked libtorch folder) or Torch_DIR (a folder holding TorchConfig.cmake), from the environment
#   2. the LibTorch inside an installed PyTorch (python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
#   3. the system install (Debian's libtorch-dev puts TorchConfig.cmake in /usr/lib/<triplet>/cmake/Torch)
# The same order is implemented for node-gyp in scripts/torch-locate.cjs.
if(TARGET torch OR INSTILL_TORCH_LOCATED)
  return()
endif()
set(INSTILL_TORCH_LOCATED ON)

set(_instill_torch_hints "")
if(DEFINED ENV{LIBTORCH} AND NOT "$ENV{LIBTORCH}" STREQUAL "")
  list(APPEND _instill_torch_hints "$ENV{LIBTORCH}" "$ENV{LIBTORCH}/share/cmake/Torch")
  set(INSTILL_TORCH_SOURCE "LIBTORCH=$ENV{LIBTORCH}")
endif()
if(DEFINED ENV{Torch_DIR} AND NOT "$ENV{Torch_DIR}" STREQUAL "")
  list(APPEND _instill_torch_hints "$ENV{Torch_DIR}")
  set(INSTILL_TORCH_SOURCE "Torch_DIR=$ENV{Torch_DIR}")
endif()
if(_instill_torch_hints)
  find_package(Torch QUIET PATHS ${_instill_torch_hints} NO_DEFAULT_PATH)
endif()

if(NOT Torch_FOUND)
  find_program(_instill_python NAMES python3 python)
  if(_instill_python)
    execute_process(
      COMMAND "${_instill_python}" -c "import torch; print(torch.utils.cmake_prefix_path)"
      OUTPUT_VARIABLE _instill_py_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
      ERROR_QUIET RESULT_VARIABLE _instill_py_rc)
    if(_instill_py_rc EQUAL 0 AND _instill_py_prefix)
      find_package(Torch QUIET PATHS "${_instill_py_prefix}" "${_instill_py_prefix}/Torch" NO_DEFAULT_PATH)
      if(Torch_FOUND)
        set(INSTILL_TORCH_SOURCE "PyTorch at ${_instill_py_prefix}")
      endif()
    endif()
  endif()
endif()

if(NOT Torch_FOUND)
  find_package(Torch QUIET)
  if(Torch_FOUND)
    set(INSTILL_TORCH_SOURCE "system install")
  endif()
endif()

if(NOT Torch_FOUND)
  message(FATAL_ERROR
    "instill: LibTorch was not found. Fix it one of three ways:\n"
    "  1. point to a LibTorch you have: export LIBTORCH=/path/to/libtorch   (or Torch_DIR=/path/with/TorchConfig.cmake)\n"
    "  2. install PyTorch for python3 (pip install torch); its bundled LibTorch is used\n"
    "  3. install the system package: sudo apt-get install libtorch-dev libopenblas0-pthread   (Debian/Ubuntu)\n"
    "then run the build again (./install.sh or npm run build:native).")
endif()

message(STATUS "instill: LibTorch ${Torch_VERSION} from ${INSTILL_TORCH_SOURCE}")
# ABI and other flags come from Torch itself, never hard-coded.
set(CMAKE_CXX_FLAGS "${CMAKE_CXX_FLAGS} ${TORCH_CXX_FLAGS}")

# rpath to Torch's library folder so the addon and the test binaries load it without LD_LIBRARY_PATH.
set(INSTILL_TORCH_LIB_DIRS "")
foreach(_lib IN LISTS TORCH_LIBRARIES)
  if(EXISTS "${_lib}")
    get_filename_component(_dir "${_lib}" DIRECTORY)
    list(APPEND INSTILL_TORCH_LIB_DIRS "${_dir}")
  endif()
endforeach()
if(TORCH_LIBRARY AND EXISTS "${TORCH_LIBRARY}")
  get_filename_component(_dir "${TORCH_LIBRARY}" DIRECTORY)
  list(APPEND INSTILL_TORCH_LIB_DIRS "${_dir}")
endif()
list(REMOVE_DUPLICATES INSTILL_TORCH_LIB_DIRS)
set(CMAKE_BUILD_RPATH "${CMAKE_BUILD_RPATH};${INSTILL_TORCH_LIB_DIRS}")
set(CMAKE_INSTALL_RPATH "${CMAKE_INSTALL_RPATH};${INSTILL_TORCH_LIB_DIRS}")

# CUDA: only when the found Torch was built with it and nvcc exists.
set(INSTILL_WITH_CUDA OFF)
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES OR CAFFE2_USE_CUDA)
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(INSTILL_WITH_CUDA ON)
  endif()
endif()
message(STATUS "instill: CUDA kernels ${INSTILL_WITH_CUDA}")
