"""Keeps the memory XLA:CPU frees inside the process, so a call's temporaries are not faulted in again.

XLA:CPU allocates the temporaries of every call (984 MB for mn04's training step at batch 32) with
malloc on one of its worker threads and frees them when the call returns. glibc serves a request
that large with a fresh ``mmap`` and unmaps it on ``free``, so each call page-faults the whole buffer
back in from zeroed pages: 240,000 minor faults and about 0.3 s of kernel time per mn04 step on the
2-core CPU, where the step itself took 0.42 s once the faults were gone.

``retain_freed_memory()`` sets glibc's malloc (``mallopt``) to serve every request from its one main
heap (one arena, no ``mmap``) and never to hand freed memory back to the kernel (no trimming): the
next call finds the last call's pages mapped. It is not exact: small allocations between calls
can split a freed block, and the heap then grows once more by the temporaries' size (a 128 MB
product: in 60 processes, 31-39 of 39 later calls faulted nothing, and each of the others grew the
heap once; 400 calls grew it by 2-3 products in all). The cost is that the process keeps its peak
memory until it exits. Where several threads allocate at once it does harm: HTS-AT's step on two
CPU devices ran 1.3-2.4x slower and kept faulting in new heap (the heap grew), and the quickstart's
sweep (two calls in flight) took 50 s instead of 44 s. So training asks for it only with
``config.train.retain_freed_memory`` (one device). It changes the whole process and acts only on
threads created afterwards (an existing thread keeps its arena): call it before the first JAX
computation starts XLA's threads. A no-op (returning False) where the C library is not glibc.
"""
import ctypes
import ctypes.util
import functools

# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
# glibc stores mallopt's int as a size_t: -1 is SIZE_MAX, so freed memory at the top of the heap is
# never handed back. (The int maximum, 2 GiB, was not enough: CNN10's step at batch 64 frees 4 GB at
# once, and the heap was trimmed and faulted in again on every step, a million faults.)
NEVER_TRIM = -1


@functools.cache
def retain_freed_memory() -> bool:
  """Sets glibc's malloc to keep freed memory mapped in the process (see the module docstring).

  Returns:
    True when glibc accepted every setting; False on a C library without ``mallopt`` (macOS, musl).
  """
  name = ctypes.util.find_library("c")
  try:
    library = ctypes.CDLL(name)
    mallopt = library.mallopt
  except (OSError, AttributeError, TypeError):
    return False
  mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
  mallopt.restype = ctypes.c_int
  settings = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, NEVER_TRIM))
  return all(mallopt(parameter, value) == 1 for parameter, value in settings)
