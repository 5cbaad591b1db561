// The kernel table of the CUDA emulator: the generated translation unit that includes the .cu sources
// lists every kernel with KERNEL(name); the runtime looks launches up in it.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>

namespace emu {
using Kernel = void (*)(void**);

struct KernelEntry {
    const char* name;
    Kernel run;
    int arity;
};

extern const std::vector<KernelEntry> KERNELS;

// calls a kernel with its arguments as cuLaunchKernel passes them: one pointer to each value
template <typename... A, std::size_t... I>
inline void call(void (*k)(A...), void** args, std::index_sequence<I...>) {
    k(*static_cast<std::decay_t<A>*>(args[I])...);
}

template <typename... A> constexpr int arity(void (*)(A...)) {
    return sizeof...(A);
}

template <auto K> void run(void** args) {
    call(K, args, std::make_index_sequence<arity(K)>{});
}

}  // namespace emu

#define KERNEL(name) emu::KernelEntry{#name, &emu::run<&name>, emu::arity(&name)}
