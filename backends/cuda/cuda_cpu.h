// cuda_cpu.h: runs CUDA C++ kernels on the CPU with g++ (C++17), for testing generated code
// without a GPU. The threads of a block are fibers on one OS thread; blocks run one after another.
//
//   __syncthreads()   a block barrier identified by its call site: threads waiting at different
//                     sites abort with "divergent barrier"; a thread that exited while others wait
//                     aborts too (KIR forbids it); nothing runnable and nothing releasable is a deadlock.
//   __shfl_xor_sync   lanes write a per-warp buffer, meet at a warp barrier, read, meet again.
//   __shared__        static thread_local storage: one copy per block, as all fibers share the OS thread.
//   dynamic smem      one fixed TLS buffer, reached through CU_DYNAMIC_SHARED(type, name); poisoned per block.
//   CUCPU_ORDER       forward (default) | reverse | random (CUCPU_SEED): the order in which runnable
//                     threads (and blocks) are resumed. Missing barriers show up as order-dependent results.
// The context switch is 6 callee-saved registers in x86-64 asm (ucontext elsewhere); under
// AddressSanitizer the switches are announced with the sanitizer fiber API.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>
#include <sys/mman.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __shared__ static thread_local
#define __align__(n) alignas(n)

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
constexpr int warpSize = 32;
typedef void* cudaStream_t;

// ---------- scalar helpers that CUDA provides as device intrinsics ----------
inline float __int_as_float(int i) {
  float f;
  std::memcpy(&f, &i, 4);
  return f;
}
inline int __float_as_int(float f) {
  int i;
  std::memcpy(&i, &f, 4);
  return i;
}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }

// IEEE binary16 storage with round-to-nearest-even conversions (arithmetic goes through float).
struct __half {
  unsigned short x;
};
inline float __half2float(__half h) {
  unsigned s = (h.x & 0x8000u) << 16, e = (h.x >> 10) & 0x1f, m = h.x & 0x3ffu, bits;
  if (e == 0x1f) bits = s | 0x7f800000u | (m << 13);
  else if (e != 0) bits = s | ((e + 112) << 23) | (m << 13);
  else if (m == 0) bits = s;
  else {  // subnormal: normalise
    int k = -1;
    do {
      m <<= 1;
      k++;
    } while (!(m & 0x400u));
    bits = s | ((unsigned)(112 - k) << 23) | ((m & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline __half __float2half_rn(float f) {
  unsigned b;
  std::memcpy(&b, &f, 4);
  unsigned s = (b >> 16) & 0x8000u, a = b & 0x7fffffffu;
  __half h;
  if (a >= 0x7f800000u) h.x = (unsigned short)(s | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0));
  else if (a >= 0x477ff000u) h.x = (unsigned short)(s | 0x7c00u);  // rounds to >= 65520: inf
  else if (a >= 0x38800000u) {                                      // normal half
    unsigned r = a - 0x38000000u;
    unsigned q = (r >> 13) + (((r & 0x1fffu) > 0x1000u || ((r & 0x1fffu) == 0x1000u && ((r >> 13) & 1))) ? 1 : 0);
    h.x = (unsigned short)(s | q);
  } else if (a < 0x33000000u) h.x = (unsigned short)s;  // below half the smallest subnormal
  else {                                                 // subnormal half
    unsigned e = a >> 23, m = (a & 0x7fffffu) | 0x800000u, sh = 126 - e;
    unsigned q = m >> sh, rem = m & ((1u << sh) - 1), half = 1u << (sh - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    h.x = (unsigned short)(s | q);
  }
  return h;
}
inline __half __float2half(float f) { return __float2half_rn(f); }

// bfloat16 storage (the top 16 bits of an f32): round to nearest even, every NaN -> 0x7fff (as cuda_bf16.h).
struct __nv_bfloat16 {
  unsigned short x;
};
inline float __bfloat162float(__nv_bfloat16 h) {
  unsigned bits = (unsigned)h.x << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  unsigned b;
  std::memcpy(&b, &f, 4);
  __nv_bfloat16 h;
  if ((b & 0x7fffffffu) > 0x7f800000u) h.x = 0x7fffu;
  else h.x = (unsigned short)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
  return h;
}
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }

namespace cucpu {

[[noreturn]] inline void fail(const std::string& msg);

// ---------- fibers ----------
#if defined(__x86_64__)
extern "C" void cucpu_swap(void** save_sp, void* next_sp);
asm(R"(
  .text
  .globl cucpu_swap
  .type cucpu_swap, @function
cucpu_swap:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size cucpu_swap, .-cucpu_swap
)");
#endif

enum class St { Ready, AtBar, AtWarp, Done };

struct Fiber {
  unsigned tid = 0;
  uint3 idx{0, 0, 0};
  St st = St::Ready;
  int site = 0;          // barrier site while AtBar
  unsigned wmask = 0;    // lanes named by the warp op while AtWarp
  char* stack = nullptr; // lowest usable byte (a guard page lies below)
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t ctx;
#endif
  void* asan_fake = nullptr;
};

constexpr size_t kStack = 256 * 1024;
constexpr size_t kPage = 4096;
constexpr size_t kDynSmem = 228 * 1024;

struct Block {
  std::vector<Fiber> fibers;
  std::function<void()> body;
  Fiber* cur = nullptr;
  bool sync = true;  // launched as a fiber block (barriers and warp ops allowed)
  const char* kernel = "";
  uint3 block{0, 0, 0};
#if defined(__x86_64__)
  void* main_sp = nullptr;
#else
  ucontext_t main_ctx;
#endif
  const void* main_bottom = nullptr;
  size_t main_size = 0;
  uint64_t warp_buf[1024 / 32][32];
};

inline thread_local Block* g_block = nullptr;
inline thread_local uint3 t_threadIdx{0, 0, 0};
inline thread_local uint3 t_blockIdx{0, 0, 0};
inline thread_local dim3 t_blockDim;
inline thread_local dim3 t_gridDim;
alignas(16) inline thread_local unsigned char t_dsmem[kDynSmem];
inline thread_local size_t t_dsmem_size = 0;

inline std::string where() {
  char b[160];
  if (!g_block) return "(no block)";
  std::snprintf(b, sizeof b, "kernel %s block (%u,%u,%u) thread (%u,%u,%u)", g_block->kernel, g_block->block.x,
                g_block->block.y, g_block->block.z, t_threadIdx.x, t_threadIdx.y, t_threadIdx.z);
  return b;
}

[[noreturn]] inline void fail(const std::string& msg) {
  std::fprintf(stderr, "cucpu error: %s\n", msg.c_str());
  std::fflush(stderr);
  std::_Exit(86);
}

inline void fiber_entry();

#if defined(__x86_64__)
inline void switch_to(void** save, void* next, const void* bottom, size_t size, void** fake, bool exiting) {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_start_switch_fiber(exiting ? nullptr : fake, bottom, size);
#else
  (void)bottom, (void)size, (void)fake, (void)exiting;
#endif
  cucpu_swap(save, next);
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(*fake, nullptr, nullptr);
#endif
}
#endif

// Fiber -> scheduler.
inline void yield_to_main(bool exiting = false) {
  Block* b = g_block;
  Fiber* f = b->cur;
#if defined(__x86_64__)
  switch_to(&f->sp, b->main_sp, b->main_bottom, b->main_size, &f->asan_fake, exiting);
#else
  (void)exiting;
  swapcontext(&f->ctx, &b->main_ctx);
#endif
}

// Scheduler -> fiber.
inline void resume(Fiber* f) {
  Block* b = g_block;
  b->cur = f;
  t_threadIdx = f->idx;
#if defined(__x86_64__)
  void* fake = nullptr;
  switch_to(&b->main_sp, f->sp, f->stack, kStack, &fake, false);
#else
  swapcontext(&b->main_ctx, &f->ctx);
#endif
}

inline void fiber_entry() {
  Block* b = g_block;
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(nullptr, &b->main_bottom, &b->main_size);
#endif
  b->body();
  b->cur->st = St::Done;
  yield_to_main(true);
  fail("finished fiber resumed");
}

inline void start_fiber(Fiber& f) {
#if defined(__SANITIZE_ADDRESS__)
  __asan_unpoison_memory_region(f.stack, kStack);  // frames of the previous block never returned
#endif
#if defined(__x86_64__)
  // Stack top: [top-8] 0 (alignment), [top-16] entry (ret target), then 6 zeroed registers.
  uintptr_t top = ((uintptr_t)f.stack + kStack) & ~(uintptr_t)15;
  void** sp = (void**)top;
  *--sp = nullptr;
  *--sp = (void*)&fiber_entry;
  for (int i = 0; i < 6; i++) *--sp = nullptr;
  f.sp = sp;
#else
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = f.stack;
  f.ctx.uc_stack.ss_size = kStack;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, (void (*)())fiber_entry, 0);
#endif
}

// Stacks are mapped once per OS thread and reused by every block.
inline char* stack_for(unsigned tid) {
  static thread_local std::vector<char*> stacks;
  while (stacks.size() <= tid) {
    void* m = mmap(nullptr, kStack + kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (m == MAP_FAILED) fail("cannot map a fiber stack");
    mprotect(m, kPage, PROT_NONE);  // guard page: a stack overflow faults instead of corrupting
    stacks.push_back((char*)m + kPage);
  }
  return stacks[tid];
}

// ---------- schedule order ----------
enum class Order { Forward, Reverse, Random };
inline Order order() {
  const char* e = std::getenv("CUCPU_ORDER");
  if (!e || !*e || !std::strcmp(e, "forward")) return Order::Forward;
  if (!std::strcmp(e, "reverse")) return Order::Reverse;
  if (!std::strcmp(e, "random")) return Order::Random;
  fail(std::string("CUCPU_ORDER must be forward, reverse or random, got '") + e + "'");
}
inline uint64_t& rng() {
  static thread_local uint64_t s = [] {
    const char* e = std::getenv("CUCPU_SEED");
    return e ? std::strtoull(e, nullptr, 10) * 2654435761u + 1 : 88172645463325252ull;
  }();
  return s;
}
inline unsigned rand_below(unsigned n) {
  uint64_t& s = rng();
  s ^= s << 13, s ^= s >> 7, s ^= s << 17;
  return (unsigned)(s % n);
}
inline std::vector<unsigned> permutation(unsigned n, Order o) {
  std::vector<unsigned> p(n);
  for (unsigned i = 0; i < n; i++) p[i] = o == Order::Reverse ? n - 1 - i : i;
  if (o == Order::Random)
    for (unsigned i = n; i > 1; i--) std::swap(p[i - 1], p[rand_below(i)]);
  return p;
}

// ---------- synchronisation (called from kernel code) ----------
inline void need_sync(const char* what) {
  if (!g_block || !g_block->sync)
    fail(std::string(what) + " in a kernel launched without synchronisation support, at " + where());
}

inline void syncthreads(int site) {
  need_sync("__syncthreads");
  Fiber* f = g_block->cur;
  f->st = St::AtBar;
  f->site = site;
  yield_to_main();
}

// Every lane of `mask` meets here once.
inline void warp_meet(unsigned mask) {
  Fiber* f = g_block->cur;
  if (!(mask >> (f->tid % 32) & 1)) fail("warp op called by a lane outside its mask, at " + where());
  f->st = St::AtWarp;
  f->wmask = mask;
  yield_to_main();
}

template <class T>
inline T shfl_xor(unsigned mask, T v, int lane_mask, int width) {
  static_assert(sizeof(T) <= 8, "shuffle payload too large");
  need_sync("__shfl_xor_sync");
  if (width <= 0 || width > 32 || (width & (width - 1))) fail("bad shuffle width at " + where());
  unsigned tid = g_block->cur->tid, lane = tid % 32;
  uint64_t* buf = g_block->warp_buf[tid / 32];
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  buf[lane] = bits;
  warp_meet(mask);
  unsigned src = (lane & ~(unsigned)(width - 1)) | ((lane ^ (unsigned)lane_mask) & (unsigned)(width - 1));
  if (!(mask >> src & 1)) fail("shuffle reads lane " + std::to_string(src) + " outside the mask, at " + where());
  T out;
  std::memcpy(&out, &buf[src], sizeof(T));
  warp_meet(mask);  // nobody overwrites the buffer before every lane has read it
  return out;
}

// ---------- the block scheduler ----------
inline std::string fiber_state(const Fiber& f) {
  char b[96];
  const char* s = f.st == St::Ready ? "ready" : f.st == St::AtBar ? "at barrier" : f.st == St::AtWarp ? "at warp op" : "exited";
  std::snprintf(b, sizeof b, "thread %u %s", f.tid, s);
  if (f.st == St::AtBar) return std::string(b) + " site " + std::to_string(f.site);
  return b;
}

// Releases waiting threads when possible; false means nothing can ever run again.
inline bool release(Block& b) {
  bool any = false;
  for (size_t w = 0; w * 32 < b.fibers.size(); w++) {
    size_t lo = w * 32, hi = std::min(b.fibers.size(), lo + 32);
    unsigned waiting = 0, mask = 0;
    bool conflict = false;
    for (size_t i = lo; i < hi; i++)
      if (b.fibers[i].st == St::AtWarp) {
        if (waiting && b.fibers[i].wmask != mask) conflict = true;
        waiting |= 1u << (i - lo);
        mask = b.fibers[i].wmask;
      }
    if (!waiting) continue;
    if (conflict) fail(std::string("warp lanes disagree on the shuffle mask in kernel ") + b.kernel);
    bool all = true;
    for (size_t i = lo; i < hi; i++) {
      if (!(mask >> (i - lo) & 1)) continue;
      if (b.fibers[i].st == St::Done)
        fail(std::string("kernel ") + b.kernel + ": warp op waits for lane " + std::to_string(i - lo) +
             " of warp " + std::to_string(w) + ", which has exited");
      if (b.fibers[i].st != St::AtWarp) all = false;
    }
    if (mask >> (hi - lo) && hi - lo < 32) fail(std::string("shuffle mask names lanes past the block in ") + b.kernel);
    if (all) {
      for (size_t i = lo; i < hi; i++)
        if (b.fibers[i].st == St::AtWarp) b.fibers[i].st = St::Ready;
      any = true;
    }
  }
  if (any) return true;
  int site = -1;
  size_t at = 0, done = 0;
  for (auto& f : b.fibers) {
    if (f.st == St::Ready) return true;
    if (f.st == St::Done) done++;
    if (f.st != St::AtBar) continue;
    if (site >= 0 && f.site != site) {
      std::string m = std::string("divergent barrier in kernel ") + b.kernel + ": threads wait at different __syncthreads sites:";
      for (auto& g : b.fibers)
        if (g.st == St::AtBar && (g.site == site || g.site == f.site)) {
          m += " " + fiber_state(g) + ";";
          if (m.size() > 400) break;
        }
      fail(m);
    }
    site = f.site, at++;
  }
  if (at == 0) return false;
  if (done > 0)
    fail(std::string("kernel ") + b.kernel + ": " + std::to_string(done) +
         " threads exited while others wait at __syncthreads (site " + std::to_string(site) + ")");
  if (at == b.fibers.size()) {
    for (auto& f : b.fibers) f.st = St::Ready;
    return true;
  }
  return false;
}

inline void run_block(Block& b, Order o) {
  unsigned n = (unsigned)b.fibers.size();
  std::vector<unsigned> perm = permutation(n, o);
  if (!b.sync) {  // no barriers: threads are plain calls in the chosen order
    for (unsigned i : perm) {
      b.cur = &b.fibers[i];
      t_threadIdx = b.fibers[i].idx;
      b.body();
    }
    return;
  }
  for (auto& f : b.fibers) {
    f.st = St::Ready;
    f.stack = stack_for(f.tid);
    start_fiber(f);
  }
  for (;;) {
    bool ran = false;
    if (o == Order::Random) perm = permutation(n, o);
    for (unsigned i : perm)
      if (b.fibers[i].st == St::Ready) {
        resume(&b.fibers[i]);
        ran = true;
      }
    bool all_done = true;
    for (auto& f : b.fibers) all_done = all_done && f.st == St::Done;
    if (all_done) return;
    if (!release(b) && !ran) {
      std::string m = std::string("deadlock in kernel ") + b.kernel + ":";
      for (auto& f : b.fibers)
        if (f.st != St::Done && m.size() < 400) m += " " + fiber_state(f) + ";";
      fail(m);
    }
  }
}

/** Runs `kernel(args...)` over `grid` x `block`. `sync` = false runs threads as plain calls. */
template <class K, class... A>
void launch(const char* name, bool sync, dim3 grid, dim3 block, size_t smem, K kernel, A... args) {
  unsigned n = block.x * block.y * block.z;
  if (n == 0 || n > 1024) fail(std::string("kernel ") + name + ": block of " + std::to_string(n) + " threads");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) fail(std::string("kernel ") + name + ": empty grid");
  if (smem > kDynSmem) fail(std::string("kernel ") + name + ": dynamic shared memory too large");
  Block* b = new Block();
  b->kernel = name;
  b->sync = sync;
  b->body = [&] { kernel(args...); };
  b->fibers.resize(n);
  for (unsigned i = 0; i < n; i++) {
    b->fibers[i].tid = i;
    b->fibers[i].idx = {i % block.x, i / block.x % block.y, i / (block.x * block.y)};
  }
  Block* saved = g_block;
  g_block = b;
  t_blockDim = block;
  t_gridDim = grid;
  t_dsmem_size = smem;
  Order o = order();
  unsigned nb = grid.x * grid.y * grid.z;
  for (unsigned i : permutation(nb, o)) {
    t_blockIdx = {i % grid.x, i / grid.x % grid.y, i / (grid.x * grid.y)};
    b->block = t_blockIdx;
    std::memset(t_dsmem, 0xff, smem);
    run_block(*b, o);
  }
  g_block = saved;
  delete b;
}

}  // namespace cucpu

#define threadIdx (cucpu::t_threadIdx)
#define blockIdx (cucpu::t_blockIdx)
#define blockDim (cucpu::t_blockDim)
#define gridDim (cucpu::t_gridDim)
#define __syncthreads() cucpu::syncthreads(__COUNTER__)
#define CU_DYNAMIC_SHARED(type, name) type* name = reinterpret_cast<type*>(cucpu::t_dsmem)

template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return cucpu::shfl_xor(mask, v, lane_mask, width);
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  cucpu::need_sync("__syncwarp");
  cucpu::warp_meet(mask);
}
