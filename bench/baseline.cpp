// mure_bench_baseline: the machine's limits, measured in-process, for scripts/bench.
//
//   mure_bench_baseline cpu                      CPU vendor/family/model/features, online CPUs
//   mure_bench_baseline peak [--seconds S] [--reps R]
//                                                FMA-loop peak, f32 and f64, 1 thread and all CPUs
//   mure_bench_baseline arches [--n N] [--threads T] [--reps R]
//                                                sgemm/dgemm GFLOP/s per BLIS kernel set this CPU can run
//   mure_bench_baseline gemm --type f32|f64 --sizes 256,512 --reps 30,20 [--arch best|skx|zen3|haswell|generic]
//                            [--threads T] [--fresh] [--gap-us U] [--split]
//                                                BLIS gemm seconds per call (C reused, or fresh per call;
//                                                with U us idle before each call, as between requests;
//                                                --split: the node's default threading, one single-threaded
//                                                BLIS call per block of C on the node's GemmPool)
//   mure_bench_baseline stream [--n N] [--reps R] [--threads 1,2]
//                                                STREAM-like triad and plain add/multiply loops, seconds per pass
//   mure_bench_baseline pages [--mib M] [--reps R]
//                                                one thread writing M MiB into freshly mapped anonymous memory
//                                                (a page fault per 4 KiB page) and into the same pages again
//
// Every result is one line: `<kind> key=value ... secs=t1,t2,...` (or gflops=...). scripts/bench parses
// these lines; nothing else is printed to stdout. Nothing here assumes a CPU: kernels are chosen
// from what the CPU reports (cpuid), in the same way as the node chooses (bench/README.md).
//
// Built with plain -O3 (no -march): a build tree may be reused on another CPU of the pool, so the
// vector code paths are selected at run time (target attributes / target_clones).

#include <blis.h>
#include <cpuid.h>
#include <immintrin.h>
#include <omp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "exec/gemm_pool.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "mure_bench_baseline: %s\n", msg.c_str());
  std::exit(2);
}

// ------------------------------------------------------------------------------------------------
// Arguments

struct Args {
  std::vector<std::string> v;
  bool Has(const char* flag) const { return std::find(v.begin(), v.end(), flag) != v.end(); }
  std::string Get(const char* flag, const std::string& dflt) const {
    for (size_t i = 0; i + 1 < v.size(); ++i)
      if (v[i] == flag) return v[i + 1];
    return dflt;
  }
  long Int(const char* flag, long dflt) const {
    std::string s = Get(flag, "");
    if (s.empty()) return dflt;
    char* end = nullptr;
    long x = std::strtol(s.c_str(), &end, 10);
    if (*end || x < 0) Die(std::string("bad integer for ") + flag + ": " + s);
    return x;
  }
  double Double(const char* flag, double dflt) const {
    std::string s = Get(flag, "");
    return s.empty() ? dflt : std::strtod(s.c_str(), nullptr);
  }
  std::vector<long> Ints(const char* flag, const std::string& dflt) const {
    std::vector<long> out;
    std::string s = Get(flag, dflt);
    size_t pos = 0;
    while (pos < s.size()) {
      size_t comma = s.find(',', pos);
      if (comma == std::string::npos) comma = s.size();
      std::string tok = s.substr(pos, comma - pos);
      if (!tok.empty()) {
        char* end = nullptr;
        long x = std::strtol(tok.c_str(), &end, 10);
        if (*end || x <= 0) Die(std::string("bad list for ") + flag + ": " + s);
        out.push_back(x);
      }
      pos = comma + 1;
    }
    return out;
  }
};

std::string Join(const std::vector<double>& xs, const char* fmt = "%.9g") {
  std::string s;
  char buf[64];
  for (size_t i = 0; i < xs.size(); ++i) {
    std::snprintf(buf, sizeof buf, fmt, xs[i]);
    if (i) s += ',';
    s += buf;
  }
  return s;
}

// ------------------------------------------------------------------------------------------------
// CPU

struct Cpu {
  std::string vendor, brand;
  unsigned family = 0, model = 0, stepping = 0;
  bool avx2, fma, avx512f, avx512dq, avx512bw, avx512vl;
  unsigned cpus = 1;
};

Cpu DetectCpu() {
  Cpu c{};
  unsigned a = 0, b = 0, cc = 0, d = 0;
  if (__get_cpuid(0, &a, &b, &cc, &d)) {
    char v[13];
    std::memcpy(v, &b, 4);
    std::memcpy(v + 4, &d, 4);
    std::memcpy(v + 8, &cc, 4);
    v[12] = 0;
    c.vendor = v;
  }
  if (__get_cpuid(1, &a, &b, &cc, &d)) {
    unsigned bf = (a >> 8) & 0xf, ef = (a >> 20) & 0xff, bm = (a >> 4) & 0xf, em = (a >> 16) & 0xf;
    c.family = bf == 0xf ? bf + ef : bf;
    c.model = (bf == 0xf || bf == 0x6) ? (em << 4) + bm : bm;
    c.stepping = a & 0xf;
  }
  char brand[49] = {0};
  for (unsigned i = 0; i < 3; ++i) {
    if (__get_cpuid(0x80000002 + i, &a, &b, &cc, &d)) {
      std::memcpy(brand + 16 * i, &a, 4);
      std::memcpy(brand + 16 * i + 4, &b, 4);
      std::memcpy(brand + 16 * i + 8, &cc, 4);
      std::memcpy(brand + 16 * i + 12, &d, 4);
    }
  }
  c.brand = brand;
  while (!c.brand.empty() && c.brand.back() == ' ') c.brand.pop_back();
  for (char& ch : c.brand)
    if (ch == ' ') ch = '_';
  __builtin_cpu_init();
  c.avx2 = __builtin_cpu_supports("avx2");
  c.fma = __builtin_cpu_supports("fma");
  c.avx512f = __builtin_cpu_supports("avx512f");
  c.avx512dq = __builtin_cpu_supports("avx512dq");
  c.avx512bw = __builtin_cpu_supports("avx512bw");
  c.avx512vl = __builtin_cpu_supports("avx512vl");
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  c.cpus = n > 0 ? static_cast<unsigned>(n) : 1;
  return c;
}

std::string Features(const Cpu& c) {
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ',';
    s += name;
  };
  add(c.avx2, "avx2");
  add(c.fma, "fma");
  add(c.avx512f, "avx512f");
  add(c.avx512dq, "avx512dq");
  add(c.avx512bw, "avx512bw");
  add(c.avx512vl, "avx512vl");
  return s.empty() ? "none" : s;
}

int CmdCpu() {
  Cpu c = DetectCpu();
  std::printf("cpu vendor=%s family=%u model=%u stepping=%u brand=%s features=%s cpus=%u blis=%s blis_auto=%s\n",
              c.vendor.c_str(), c.family, c.model, c.stepping, c.brand.empty() ? "unknown" : c.brand.c_str(),
              Features(c).c_str(), c.cpus, bli_info_get_version_str(), bli_arch_string(bli_arch_query_id()));
  return 0;
}

// ------------------------------------------------------------------------------------------------
// FMA peak: 12 independent accumulators (enough to cover FMA latency x pipes on current x86),
// each iteration 12 FMAs of one vector register. flops = 2 per lane per FMA.

#define MURE_FMA12(OP, T)                                                                                   \
  for (long i = 0; i < iters; ++i) {                                                                        \
    a0 = OP(a0, m, c); a1 = OP(a1, m, c); a2 = OP(a2, m, c); a3 = OP(a3, m, c); a4 = OP(a4, m, c);          \
    a5 = OP(a5, m, c); a6 = OP(a6, m, c); a7 = OP(a7, m, c); a8 = OP(a8, m, c); a9 = OP(a9, m, c);          \
    a10 = OP(a10, m, c); a11 = OP(a11, m, c);                                                               \
  }

__attribute__((target("avx512f"))) double Fma512F32(long iters) {
  __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  __m512 a0 = _mm512_set1_ps(1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0,
         a9 = a0, a10 = a0, a11 = a0;
  MURE_FMA12(_mm512_fmadd_ps, __m512)
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                           _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
  alignas(64) float out[16];
  _mm512_store_ps(out, s);
  double t = 0;
  for (float x : out) t += x;
  return t;
}

__attribute__((target("avx512f"))) double Fma512F64(long iters) {
  __m512d m = _mm512_set1_pd(0.999999), c = _mm512_set1_pd(1e-7);
  __m512d a0 = _mm512_set1_pd(1.0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0,
          a9 = a0, a10 = a0, a11 = a0;
  MURE_FMA12(_mm512_fmadd_pd, __m512d)
  __m512d s = _mm512_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)),
                            _mm512_add_pd(_mm512_add_pd(a4, a5), _mm512_add_pd(a6, a7)));
  s = _mm512_add_pd(s, _mm512_add_pd(_mm512_add_pd(a8, a9), _mm512_add_pd(a10, a11)));
  alignas(64) double out[8];
  _mm512_store_pd(out, s);
  double t = 0;
  for (double x : out) t += x;
  return t;
}

__attribute__((target("avx2,fma"))) double Fma256F32(long iters) {
  __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  __m256 a0 = _mm256_set1_ps(1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0,
         a9 = a0, a10 = a0, a11 = a0;
  MURE_FMA12(_mm256_fmadd_ps, __m256)
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                           _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
  float out[8];
  _mm256_storeu_ps(out, s);
  double t = 0;
  for (float x : out) t += x;
  return t;
}

__attribute__((target("avx2,fma"))) double Fma256F64(long iters) {
  __m256d m = _mm256_set1_pd(0.999999), c = _mm256_set1_pd(1e-7);
  __m256d a0 = _mm256_set1_pd(1.0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0,
          a9 = a0, a10 = a0, a11 = a0;
  MURE_FMA12(_mm256_fmadd_pd, __m256d)
  __m256d s = _mm256_add_pd(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)),
                            _mm256_add_pd(_mm256_add_pd(a4, a5), _mm256_add_pd(a6, a7)));
  s = _mm256_add_pd(s, _mm256_add_pd(_mm256_add_pd(a8, a9), _mm256_add_pd(a10, a11)));
  double out[4];
  _mm256_storeu_pd(out, s);
  return out[0] + out[1] + out[2] + out[3];
}

// Scalar fallback (no AVX2/FMA): still 12 chains, so the figure is the scalar FMA/mul-add peak.
double FmaScalar(long iters, bool f64) {
  double m = 0.999999, c = 1e-7;
  double a0 = 1, a1 = 1, a2 = 1, a3 = 1, a4 = 1, a5 = 1, a6 = 1, a7 = 1, a8 = 1, a9 = 1, a10 = 1, a11 = 1;
  auto op = [](double a, double mm, double cc) { return a * mm + cc; };
  MURE_FMA12(op, double)
  (void)f64;
  return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
}

struct PeakKernel {
  const char* isa;
  int lanes;  // per vector register
  double (*fn)(long);
};

PeakKernel ChoosePeak(const Cpu& cpu, bool f64) {
  if (cpu.avx512f) return f64 ? PeakKernel{"avx512", 8, Fma512F64} : PeakKernel{"avx512", 16, Fma512F32};
  if (cpu.avx2 && cpu.fma) return f64 ? PeakKernel{"avx2+fma", 4, Fma256F64} : PeakKernel{"avx2+fma", 8, Fma256F32};
  return PeakKernel{"scalar", 1, f64 ? +[](long n) { return FmaScalar(n, true); } : +[](long n) { return FmaScalar(n, false); }};
}

volatile double g_sink;

// Runs `fn(iters)` on `threads` threads released together; returns the wall time.
double RunThreads(unsigned threads, double (*fn)(long), long iters) {
  std::atomic<unsigned> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  std::vector<double> sinks(threads);
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) {
      }
      sinks[t] = fn(iters);
    });
  }
  while (ready.load() < threads) {
  }
  auto t0 = Clock::now();
  go.store(true, std::memory_order_release);
  for (auto& th : pool) th.join();
  double s = Seconds(t0);
  for (double x : sinks) g_sink = g_sink + x;
  return s;
}

int CmdPeak(const Args& args) {
  Cpu cpu = DetectCpu();
  double target = args.Double("--seconds", 0.25);
  long reps = std::max(1L, args.Int("--reps", 5));
  std::vector<unsigned> thread_counts{1};
  if (cpu.cpus > 1) thread_counts.push_back(cpu.cpus);
  for (bool f64 : {false, true}) {
    PeakKernel k = ChoosePeak(cpu, f64);
    // Size the loop so one run lasts about `target` seconds on one thread.
    long iters = 1 << 16;
    for (;;) {
      double s = RunThreads(1, k.fn, iters);
      if (s > 0.02) {
        iters = static_cast<long>(iters * target / s);
        break;
      }
      iters *= 4;
    }
    const double flops_per_thread = 2.0 * 12.0 * k.lanes * static_cast<double>(iters);
    for (unsigned t : thread_counts) {
      RunThreads(t, k.fn, iters / 4);  // warm-up: clocks up, pages in
      std::vector<double> g;
      for (long r = 0; r < reps; ++r) g.push_back(flops_per_thread * t / RunThreads(t, k.fn, iters) / 1e9);
      std::printf("peak type=%s threads=%u isa=%s accumulators=12 lanes=%d gflops=%s\n", f64 ? "f64" : "f32", t,
                  k.isa, k.lanes, Join(g).c_str());
      std::fflush(stdout);
    }
  }
  return 0;
}

// ------------------------------------------------------------------------------------------------
// BLIS

struct Arch {
  const char* name;
  arch_t id;
};

// The same candidate rule as the node (src/exec/blis_executor.cpp): kernel sets the CPU can run.
std::vector<Arch> Candidates(const Cpu& cpu) {
  std::vector<Arch> out;
  if (cpu.avx512f && cpu.avx512dq && cpu.avx512bw && cpu.avx512vl) out.push_back({"skx", BLIS_ARCH_SKX});
  if (cpu.avx2 && cpu.fma) {
    out.push_back({"zen3", BLIS_ARCH_ZEN3});
    out.push_back({"haswell", BLIS_ARCH_HASWELL});
  }
  out.push_back({"generic", BLIS_ARCH_GENERIC});
  return out;
}

void FillRandom(void* p, size_t count, bool f64, unsigned seed) {
  uint64_t s = 0x9E3779B97F4A7C15ull ^ seed;
  for (size_t i = 0; i < count; ++i) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    double x = static_cast<double>(s >> 11) / 9007199254740992.0;  // [0, 1)
    if (f64)
      static_cast<double*>(p)[i] = x;
    else
      static_cast<float*>(p)[i] = static_cast<float>(x);
  }
}

struct Gemm {
  bool f64;
  dim_t n;
  void *a, *b, *c;
  size_t bytes;
  Gemm(bool f64_, dim_t n_) : f64(f64_), n(n_) {
    bytes = static_cast<size_t>(n) * n * (f64 ? 8 : 4);
    size_t rounded = (bytes + 127) / 128 * 128;
    a = std::aligned_alloc(128, rounded);
    b = std::aligned_alloc(128, rounded);
    c = std::aligned_alloc(128, rounded);
    if (!a || !b || !c) Die("out of memory");
    FillRandom(a, static_cast<size_t>(n) * n, f64, 1);
    FillRandom(b, static_cast<size_t>(n) * n, f64, 2);
    std::memset(c, 0, bytes);
  }
  ~Gemm() {
    std::free(a);
    std::free(b);
    std::free(c);
  }
  // One block of rows/columns of out = a b on `threads` BLIS threads.
  void Block(cntx_t* cntx, unsigned threads, void* out, const mure::GemmPart& p) {
    rntm_t rntm = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(static_cast<dim_t>(threads), &rntm);
    const dim_t rows = static_cast<dim_t>(p.rows), cols = static_cast<dim_t>(p.cols);
    const size_t r0 = p.row0, c0 = p.col0, ld = static_cast<size_t>(n);
    if (f64) {
      double one = 1, zero = 0;
      bli_dgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, rows, cols, n, &one, static_cast<double*>(a) + r0 * ld, n, 1,
                   static_cast<double*>(b) + c0, n, 1, &zero, static_cast<double*>(out) + r0 * ld + c0, n, 1, cntx,
                   &rntm);
    } else {
      float one = 1, zero = 0;
      bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, rows, cols, n, &one, static_cast<float*>(a) + r0 * ld, n, 1,
                   static_cast<float*>(b) + c0, n, 1, &zero, static_cast<float*>(out) + r0 * ld + c0, n, 1, cntx,
                   &rntm);
    }
  }
  // One call; with `fresh`, the output is a fresh allocation (as the node allocates each result);
  // with `pool`, split as the node does by default (mure::SplitGemm, single-threaded BLIS per part).
  double Run(cntx_t* cntx, unsigned threads, bool fresh, mure::GemmPool* pool = nullptr) {
    auto t0 = Clock::now();
    void* out = c;
    if (fresh) {
      out = std::aligned_alloc(128, (bytes + 127) / 128 * 128);
      if (!out) Die("out of memory");
    }
    const uint64_t un = static_cast<uint64_t>(n);
    if (pool) {
      const auto parts = mure::SplitGemm(un, un, un, pool->threads(), 32);
      pool->Run(static_cast<unsigned>(parts.size()), [&](unsigned i) { Block(cntx, 1, out, parts[i]); });
    } else {
      Block(cntx, threads, out, mure::GemmPart{0, un, 0, un});
    }
    double s = Seconds(t0);
    if (fresh) {
      g_sink = g_sink + static_cast<float*>(out)[0];
      std::free(out);
    }
    return s;
  }
};


// GFLOP/s of each candidate kernel set, n x n x n: rounds interleave the candidates (so that a
// burst of load from elsewhere hits all of them), and each keeps its best round.
std::vector<std::pair<Arch, double>> Calibrate(const Cpu& cpu, bool f64, dim_t n, unsigned threads, long rounds) {
  std::vector<std::pair<Arch, double>> out;
  std::vector<cntx_t*> cntxs;
  for (const Arch& arch : Candidates(cpu)) {
    cntx_t* cntx = bli_gks_lookup_nat_cntx(arch.id);
    if (!cntx) continue;
    out.push_back({arch, 0.0});
    cntxs.push_back(cntx);
  }
  Gemm g(f64, n);
  for (cntx_t* cntx : cntxs) g.Run(cntx, threads, false);  // warm-up
  for (long r = 0; r < rounds; ++r) {
    for (size_t i = 0; i < cntxs.size(); ++i) {
      double gf = 2.0 * n * n * n / g.Run(cntxs[i], threads, false) / 1e9;
      out[i].second = std::max(out[i].second, gf);
    }
  }
  return out;
}

int CmdArches(const Args& args) {
  Cpu cpu = DetectCpu();
  dim_t n = args.Int("--n", 1024);
  unsigned threads = static_cast<unsigned>(args.Int("--threads", cpu.cpus));
  long reps = std::max(1L, args.Int("--reps", 3));
  bli_init();
  for (bool f64 : {false, true}) {
    auto cal = Calibrate(cpu, f64, n, threads, reps);
    for (auto& [arch, gf] : cal)
      std::printf("arch type=%s name=%s n=%ld threads=%u gflops=%.3f\n", f64 ? "f64" : "f32", arch.name,
                  static_cast<long>(n), threads, gf);
  }
  return 0;
}

int CmdGemm(const Args& args) {
  Cpu cpu = DetectCpu();
  std::string type = args.Get("--type", "f32");
  if (type != "f32" && type != "f64") Die("--type must be f32 or f64");
  bool f64 = type == "f64";
  auto sizes = args.Ints("--sizes", "1024");
  auto reps = args.Ints("--reps", "5");
  if (reps.size() != 1 && reps.size() != sizes.size()) Die("--reps: one count, or one per size");
  unsigned threads = static_cast<unsigned>(args.Int("--threads", cpu.cpus));
  bool fresh = args.Has("--fresh");
  long gap_us = args.Int("--gap-us", 0);  // idle time between calls, as between requests
  const bool split = args.Has("--split");
  std::unique_ptr<mure::GemmPool> pool;
  if (split && threads > 1) pool = std::make_unique<mure::GemmPool>(threads);
  std::string want = args.Get("--arch", "best");
  bli_init();

  Arch arch{nullptr, BLIS_ARCH_GENERIC};
  std::string how;
  if (want == "best") {
    // Calibrate like the node does, but at a size where the choice matters (n = 1024, all threads).
    auto cal = Calibrate(cpu, f64, 1024, threads, 3);
    double best = -1;
    for (auto& [a, gf] : cal) {
      if (gf > best) best = gf, arch = a;
      char item[64];
      std::snprintf(item, sizeof item, "%s%s:%d", how.empty() ? "" : ";", a.name, static_cast<int>(gf));
      how += item;
    }
    if (!arch.name) Die("BLIS has no usable kernel set");
  } else {
    for (const Arch& a : Candidates(cpu))
      if (want == a.name) arch = a;
    if (!arch.name) Die("kernel set " + want + " cannot run on this CPU (" + Features(cpu) + ")");
    how = "forced";
  }
  cntx_t* cntx = bli_gks_lookup_nat_cntx(arch.id);
  if (!cntx) Die(std::string("this BLIS build has no ") + arch.name + " kernels");

  for (size_t i = 0; i < sizes.size(); ++i) {
    dim_t n = sizes[i];
    long r = reps.size() == 1 ? reps[0] : reps[i];
    Gemm g(f64, n);
    for (int w = 0; w < (n < 2048 ? 2 : 1); ++w) g.Run(cntx, threads, fresh, pool.get());  // warm-up: pack buffers, threads
    std::vector<double> s;
    for (long k = 0; k < r; ++k) {
      if (gap_us) ::usleep(static_cast<useconds_t>(gap_us));
      s.push_back(g.Run(cntx, threads, fresh, pool.get()));
    }
    std::printf("gemm type=%s n=%ld arch=%s choice=%s threads=%u fresh=%d split=%d gap_us=%ld secs=%s\n", type.c_str(),
                static_cast<long>(n), arch.name, how.c_str(), threads, fresh ? 1 : 0, split ? 1 : 0, gap_us,
                Join(s).c_str());
    std::fflush(stdout);
  }
  return 0;
}

// ------------------------------------------------------------------------------------------------
// STREAM-like loops over n floats. Arrays are touched first by the threads that use them.

__attribute__((target_clones("avx2", "default"))) void TriadChunk(float* a, const float* b, const float* c,
                                                                  float s, size_t n) {
  for (size_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
}
__attribute__((target_clones("avx2", "default"))) void AddChunk(float* out, const float* a, const float* b,
                                                                size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}
__attribute__((target_clones("avx2", "default"))) void MulChunk(float* out, const float* a, const float* b,
                                                                size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] * b[i];
}

enum class Kernel { kTriad, kAdd, kMul };

double StreamPass(Kernel k, float* out, const float* x, const float* y, size_t n, int threads) {
  auto t0 = Clock::now();
#pragma omp parallel num_threads(threads)
  {
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    size_t lo = n * t / nt, hi = n * (t + 1) / nt;
    switch (k) {
      case Kernel::kTriad: TriadChunk(out + lo, x + lo, y + lo, 3.0f, hi - lo); break;
      case Kernel::kAdd: AddChunk(out + lo, x + lo, y + lo, hi - lo); break;
      case Kernel::kMul: MulChunk(out + lo, x + lo, y + lo, hi - lo); break;
    }
  }
  return Seconds(t0);
}

float* AllocTouched(size_t n, int threads, float value) {
  auto* p = static_cast<float*>(std::aligned_alloc(128, (n * sizeof(float) + 127) / 128 * 128));
  if (!p) Die("out of memory");
#pragma omp parallel num_threads(threads)
  {
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    size_t lo = n * t / nt, hi = n * (t + 1) / nt;
    for (size_t i = lo; i < hi; ++i) p[i] = value + static_cast<float>(i % 1024) * 1e-3f;
  }
  return p;
}

int CmdStream(const Args& args) {
  Cpu cpu = DetectCpu();
  size_t n = static_cast<size_t>(args.Int("--n", 16 * 1024 * 1024));
  long reps = std::max(1L, args.Int("--reps", 10));
  auto thread_list = args.Ints("--threads", std::to_string(cpu.cpus));
  for (long t : thread_list) {
    int threads = static_cast<int>(t);
    float* a = AllocTouched(n, threads, 0.0f);
    float* b = AllocTouched(n, threads, 1.0f);
    float* c = AllocTouched(n, threads, 2.0f);
    struct {
      const char* name;
      Kernel k;
    } kernels[] = {{"triad", Kernel::kTriad}, {"add", Kernel::kAdd}, {"multiply", Kernel::kMul}};
    for (auto& kn : kernels) {
      for (int w = 0; w < 2; ++w) StreamPass(kn.k, a, b, c, n, threads);
      std::vector<double> s;
      for (long r = 0; r < reps; ++r) s.push_back(StreamPass(kn.k, a, b, c, n, threads));
      std::printf("stream kernel=%s n=%zu threads=%d fresh=0 secs=%s\n", kn.name, n, threads, Join(s).c_str());
      std::fflush(stdout);
    }
    // The same add with a fresh output array per pass: what a per-result allocation costs (page faults).
    {
      std::vector<double> s;
      for (long r = 0; r < reps + 1; ++r) {
        auto t0 = Clock::now();
        auto* out = static_cast<float*>(std::aligned_alloc(128, (n * sizeof(float) + 127) / 128 * 128));
        if (!out) Die("out of memory");
        StreamPass(Kernel::kAdd, out, b, c, n, threads);
        double secs = Seconds(t0);
        g_sink = g_sink + out[n / 2];
        std::free(out);
        if (r > 0) s.push_back(secs);
      }
      std::printf("stream kernel=add n=%zu threads=%d fresh=1 secs=%s\n", n, threads, Join(s).c_str());
    }
    g_sink = g_sink + a[n / 3];
    std::free(a);
    std::free(b);
    std::free(c);
  }
  return 0;
}

// What a fresh buffer costs before its first byte is useful: each 4 KiB page of a new anonymous
// mapping faults on its first write. A process that makes a new buffer per result pays it (the
// BEAM's binaries, unless its allocator hands back memory it kept); the second pass is the same
// write into pages that exist.
int CmdPages(const Args& args) {
  size_t bytes = static_cast<size_t>(std::max(1L, args.Int("--mib", 64))) << 20;
  long reps = std::max(1L, args.Int("--reps", 5));
  std::vector<double> fresh, warm;
  for (long r = 0; r < reps; ++r) {
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) Die("mmap of " + std::to_string(bytes) + " bytes failed");
    auto* p = static_cast<unsigned char*>(m);
    auto t0 = Clock::now();
    std::memset(p, static_cast<int>(r + 1), bytes);
    fresh.push_back(Seconds(t0));
    t0 = Clock::now();
    std::memset(p, static_cast<int>(r + 2), bytes);
    warm.push_back(Seconds(t0));
    g_sink = g_sink + p[bytes / 3];
    munmap(m, bytes);
  }
  std::printf("pages bytes=%zu fresh=1 secs=%s\n", bytes, Join(fresh).c_str());
  std::printf("pages bytes=%zu fresh=0 secs=%s\n", bytes, Join(warm).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s cpu | peak | arches | gemm | stream | pages [options] (see the source header)\n", argv[0]);
    return 2;
  }
  Args args;
  for (int i = 2; i < argc; ++i) args.v.emplace_back(argv[i]);
  std::string cmd = argv[1];
  if (cmd == "cpu") return CmdCpu();
  if (cmd == "peak") return CmdPeak(args);
  if (cmd == "arches") return CmdArches(args);
  if (cmd == "gemm") return CmdGemm(args);
  if (cmd == "stream") return CmdStream(args);
  if (cmd == "pages") return CmdPages(args);
  Die("unknown command " + cmd);
}
