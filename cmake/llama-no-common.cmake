# Included by CMake right after llama.cpp's project() (make passes -DCMAKE_PROJECT_llama.cpp_INCLUDE=<this file>).
# llama-cpp-python forces LLAMA_BUILD_COMMON=ON in the cache, but its ctypes bindings load only libllama and libggml*
# from llama_cpp/lib; the common library (chat templates, argument parsing, JSON grammar for llama.cpp's own tools)
# is installed beside them into site-packages/lib and never loaded. A normal variable shadows the cached one in
# llama.cpp's directory, so neither common/ is compiled nor its install rule run: the compile takes about half as long.
set(LLAMA_BUILD_COMMON OFF)
