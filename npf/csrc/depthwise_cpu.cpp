// Depthwise k x k convolution with zero 'same' padding on CPU, for channels-last tensors
// (B, H, W, C in memory), fp32 or bf16: the forward pass and the weight gradient.
//
//   out[b, h, w, c]  = sum_{i, j} x[b, h + i - k/2, w + j - k/2, c] * weight[c, i, j]
//   grad_w[c, i, j]  = sum_{b, h, w} x[b, h + i - k/2, w + j - k/2, c] * g[b, h, w, c]
//
// Both are vectorised over channels and sum in fp32 (k is a template parameter, so the
// loops over the filter unroll).
//
// Forward: one work item is an image, or a band of its rows when the batch is too small to
// occupy the threads (at::parallel_for, OpenMP). Each thread converts the input rows that
// its output rows need, once each and whole (every channel, so every cache line is used),
// to fp32 in a ring of k zero-padded rows laid out channel group by channel group. Per
// output row and group of channels (one SIMD vector, GCC/Clang vector extensions as wide
// as the target's registers) it keeps kTile output columns in registers as accumulators
// and, per filter row, the k weight vectors, streaming the kTile + k - 1 input vectors.
// bf16 outputs are rounded to nearest even. On 2 Zen 3 cores (AVX2) it ran 1.7-2.3x faster
// than oneDNN's channels-last depthwise convolution in fp32 (benchmarks/depthwise_cpu.py);
// an earlier forward split by channel block (each reading a slice of every pixel) was
// slower than oneDNN.
//
// Weight gradient: one work item is a vector of channels (the block of channels the module
// exports as CHANNEL_BLOCK: 16 with AVX-512, 8 with AVX2, 4 otherwise). A thread converts
// its items 64 channels at a time (whole cache lines of fp32) row by row: per image and
// output row, the output gradient row and the next input row (into a ring of k zero-padded
// rows, as the forward) to fp32. Per vector and filter row i it keeps the k accumulators of
// grad_w[., i, :] in registers while sweeping the row a few columns at a time (kCols, as
// many as the registers hold), and it prefetches the rows that the next output row reads,
// so that reading the inputs overlaps with the arithmetic. Each channel's sums run in the
// same order whatever the number of threads.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

// One SIMD vector of fp32 lanes, as wide as the target's registers.
#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif
constexpr int64_t kVec = kVecBytes / 4;
typedef float VFloat __attribute__((vector_size(kVecBytes)));
typedef uint32_t VBits __attribute__((vector_size(kVecBytes)));
typedef uint16_t VHalf __attribute__((vector_size(kVecBytes / 2)));

// kVec channels from memory to fp32 and back (unaligned; bf16 rounded to nearest even).
inline VFloat load(const float* src) {
  VFloat v;
  std::memcpy(&v, src, sizeof v);
  return v;
}

inline VFloat load(const at::BFloat16* src) {
  VHalf half;
  std::memcpy(&half, src, sizeof half);
  return (VFloat)(__builtin_convertvector(half, VBits) << 16);
}

inline void store(float* dst, VFloat v) { std::memcpy(dst, &v, sizeof v); }

inline void store(at::BFloat16* dst, VFloat v) {
  const VBits bits = (VBits)v;
  const VBits rounded = (bits + 0x7fff + ((bits >> 16) & 1)) >> 16;
  const VBits nan = (VBits)(v != v);  // all ones in NaN lanes, which become 0x7fc0
  const VHalf half = __builtin_convertvector((rounded & ~nan) | (nan & 0x7fc0), VHalf);
  std::memcpy(dst, &half, sizeof half);
}

// Output columns per register tile of the forward pass: 8 independent sums cover the FMA
// latency, and 8 accumulators + k weights + 1 input fit AVX-512's 32 registers (with
// AVX2's 16, the compiler keeps some weights in L1 instead).
constexpr int64_t kTile = 8;

// acc[t] += sum_{i in [i0, i1), j} rows[i][t + j] * weight[i, j], kVec channels per vector;
// rows[i] points at the input row of filter row i, at the tile's first (padded) column.
template <int K>
inline void forward_tile(const float* const* rows, const float* weight, int i0, int i1,
                         VFloat (&acc)[kTile]) {
  for (int i = i0; i < i1; ++i) {
    VFloat w[K];
#pragma GCC unroll 16
    for (int j = 0; j < K; ++j) w[j] = load(weight + (i * K + j) * kVec);
#pragma GCC unroll 32
    for (int c = 0; c < kTile + K - 1; ++c) {
      const VFloat xv = load(rows[i] + c * kVec);
#pragma GCC unroll 16
      for (int t = 0; t < kTile; ++t) {
        if (c - t >= 0 && c - t < K) acc[t] += xv * w[c - t];
      }
    }
  }
}

// weight: (C / kVec, K, K, kVec) in fp32. Work items: (image, band of ``band`` rows).
template <int K, typename T>
void forward(const T* x, const float* weight, T* out, int64_t B, int64_t C, int64_t H, int64_t W,
             int64_t band) {
  constexpr int64_t pad = K / 2;
  const int64_t groups = C / kVec;
  const int64_t Wp = (W + kTile - 1) / kTile * kTile + 2 * pad;  // whole tiles + padding
  const int64_t row_size = groups * Wp * kVec;                     // one input row in fp32
  const int64_t bands = (H + band - 1) / band;
  at::parallel_for(0, B * bands, 1, [&](int64_t begin, int64_t end) {
    // input row r in slot r % K; the padding columns stay zero
    std::vector<float> ring(K * row_size, 0.0f);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / bands, h0 = item % bands * band, h1 = std::min(H, h0 + band);
      const T* image = x + b * H * W * C;
      int64_t next = std::max<int64_t>(0, h0 - pad);  // the next input row to convert
      for (int64_t h = h0; h < h1; ++h) {
        for (; next < std::min(H, h + pad + 1); ++next) {
          float* dst = ring.data() + next % K * row_size + pad * kVec;
          const T* src = image + next * W * C;
          for (int64_t w = 0; w < W; ++w) {
            for (int64_t g = 0; g < groups; ++g) {
              store(dst + (g * Wp + w) * kVec, load(src + w * C + g * kVec));
            }
          }
        }
        const int i0 = std::max<int64_t>(0, pad - h), i1 = std::min<int64_t>(K, H + pad - h);
        for (int64_t g = 0; g < groups; ++g) {
          const float* rows[K];
          for (int i = i0; i < i1; ++i) {
            rows[i] = ring.data() + (h + i - pad) % K * row_size + g * Wp * kVec;
          }
          T* dst = out + (b * H + h) * W * C + g * kVec;
          for (int64_t w0 = 0; w0 < W; w0 += kTile) {
            VFloat acc[kTile] = {};
            forward_tile<K>(rows, weight + g * K * K * kVec, i0, i1, acc);
            for (int i = i0; i < i1; ++i) rows[i] += kTile * kVec;
            const int64_t n = std::min(kTile, W - w0);
            for (int64_t t = 0; t < n; ++t) store(dst + (w0 + t) * C, acc[t]);
          }
        }
      }
    }
  });
}

// Vector registers of the target: 32 with AVX-512 (and on AArch64), 16 otherwise.
#if defined(__AVX512F__) || defined(__aarch64__)
constexpr int kRegisters = 32;
#else
constexpr int kRegisters = 16;
#endif

// Output columns per step of the weight gradient's row sweep: K accumulators, kCols output
// gradient vectors and one input vector in registers, one to spare (4 columns up to K = 9
// with 16 registers, 3 at K = 11).
template <int K>
constexpr int kCols = std::min(4, kRegisters - K - 2);

// Channel vectors a thread converts together: 64 channels, whole cache lines of fp32.
constexpr int64_t kChunk = 64 / kVec;

// Keeps v in a register: otherwise GCC folds the load of an input vector into each of
// its multiply-adds, up to kCols loads instead of one.
inline void in_register(VFloat& v) {
#if defined(__x86_64__) || defined(__i386__)
  asm("" : "+v"(v));
#elif defined(__aarch64__)
  asm("" : "+w"(v));
#endif
}

// sum[j] += sum_{t < T} x[t + j] * g[t], kVec channels per vector: each of the T + K - 1
// input vectors is loaded once for up to T multiply-adds.
template <int K, int T>
inline void accumulate_columns(const VFloat* x, const VFloat* g, VFloat (&sum)[K]) {
  VFloat gv[T];
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) gv[t] = g[t];
#pragma GCC unroll 32
  for (int c = 0; c < T + K - 1; ++c) {
    VFloat xv = x[c];
    in_register(xv);
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      if (c - t >= 0 && c - t < K) sum[c - t] += xv * gv[t];
    }
  }
}

// sum[j] += sum_w x[w + j] * g[w] over a row of W columns.
template <int K>
inline void accumulate_row(const VFloat* x, const VFloat* g, int64_t W, VFloat (&sum)[K]) {
  constexpr int T = kCols<K>;
  int64_t w = 0;
  for (; w + T <= W; w += T) {
    // hides x's progress from GCC's predictive commoning, which would carry input
    // vectors from step to step in registers and spill the accumulators
    asm("" : "+r"(x));
    accumulate_columns<K, T>(x + w, g + w, sum);
  }
  for (; w < W; ++w) accumulate_columns<K, 1>(x + w, g + w, sum);
}

inline void prefetch(const void* p, int64_t bytes) {
  for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch(static_cast<const char*>(p) + o);
}

// Work items: vectors of kVec channels; a thread takes its items kChunk at a time.
template <int K, typename T>
void weight_grad(const T* x, const T* g, float* out, int64_t B, int64_t C, int64_t H, int64_t W) {
  constexpr int64_t pad = K / 2;
  const int64_t Wp = W + 2 * pad;
  at::parallel_for(0, C / kVec, 1, [&](int64_t begin, int64_t end) {
    const int64_t n = std::min(kChunk, end - begin);
    // input row r in slot r % K, vector by vector, with zero padding columns; one output
    // gradient row; the sums over the batch, (vector, i, j)
    std::vector<VFloat> ring(K * n * Wp, VFloat{});
    std::vector<VFloat> grow(n * W);
    std::vector<VFloat> acc(n * K * K);
    for (int64_t first = begin; first < end; first += n) {
      const int64_t m = std::min(n, end - first);
      const int64_t bytes = m * kVec * sizeof(T);  // the chunk's share of a pixel
      std::fill(acc.begin(), acc.end(), VFloat{});
      for (int64_t b = 0; b < B; ++b) {
        const T* xb = x + b * H * W * C + first * kVec;
        const T* gb = g + b * H * W * C + first * kVec;
        int64_t next = 0;  // the next input row to convert
        for (int64_t h = 0; h < H; ++h) {
          for (; next < std::min(H, h + pad + 1); ++next) {
            VFloat* dst = ring.data() + next % K * n * Wp + pad;
            for (int64_t w = 0; w < W; ++w) {
              const T* src = xb + (next * W + w) * C;
              for (int64_t v = 0; v < m; ++v) dst[v * Wp + w] = load(src + v * kVec);
            }
          }
          for (int64_t w = 0; w < W; ++w) {
            const T* src = gb + (h * W + w) * C;
            for (int64_t v = 0; v < m; ++v) grow[v * W + w] = load(src + v * kVec);
          }
          // rows of the flattened batch that the next output row reads first, prefetched
          // pixel by pixel while the sums run, evenly over the row sweeps
          const int64_t xnext = b * H + h + pad + 1, gnext = b * H + h + 1;
          const int i0 = std::max<int64_t>(0, pad - h), i1 = std::min<int64_t>(K, H + pad - h);
          const int64_t per_sweep = (W + m * (i1 - i0) - 1) / (m * (i1 - i0));
          int64_t fetched = 0;
          for (int64_t v = 0; v < m; ++v) {
            for (int i = i0; i < i1; ++i) {
              const int64_t stop = std::min(W, fetched + per_sweep);
              for (; fetched < stop; ++fetched) {
                if (xnext < B * H) prefetch(x + (xnext * W + fetched) * C + first * kVec, bytes);
                if (gnext < B * H) prefetch(g + (gnext * W + fetched) * C + first * kVec, bytes);
              }
              VFloat* a = acc.data() + (v * K + i) * K;
              VFloat sum[K];
              for (int j = 0; j < K; ++j) sum[j] = a[j];
              accumulate_row<K>(ring.data() + (h + i - pad) % K * n * Wp + v * Wp,
                                grow.data() + v * W, W, sum);
              for (int j = 0; j < K; ++j) a[j] = sum[j];
            }
          }
        }
      }
      for (int64_t v = 0; v < m; ++v) {
        for (int ij = 0; ij < K * K; ++ij) {
          for (int64_t l = 0; l < kVec; ++l) {
            out[((first + v) * kVec + l) * K * K + ij] = acc[v * K * K + ij][l];
          }
        }
      }
    }
  });
}

// f(std::integral_constant<int, k>{}) for the compiled kernel sizes.
template <typename F>
void dispatch_k(int64_t k, F&& f) {
  switch (k) {
    case 3: return f(std::integral_constant<int, 3>{});
    case 5: return f(std::integral_constant<int, 5>{});
    case 7: return f(std::integral_constant<int, 7>{});
    case 9: return f(std::integral_constant<int, 9>{});
    case 11: return f(std::integral_constant<int, 11>{});
    default: TORCH_CHECK(false, "kernel size ", k, " not compiled (3, 5, 7, 9, 11)");
  }
}

void check_dtype(const torch::Tensor& x) {
  TORCH_CHECK(x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16,
              "dtype must be float32 or bfloat16");
}

}  // namespace

torch::Tensor depthwise_forward(torch::Tensor x, torch::Tensor weight) {
  TORCH_CHECK(x.dim() == 4 && weight.dim() == 4, "x (B, C, H, W) and weight (C, 1, k, k)");
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), k = weight.size(3);
  TORCH_CHECK(weight.size(0) == C && weight.size(1) == 1 && weight.size(2) == k,
              "weight must be (C, 1, k, k)");
  TORCH_CHECK(x.scalar_type() == weight.scalar_type(), "x and weight: same dtype");
  check_dtype(x);
  TORCH_CHECK(C % kVec == 0, "channels must be a multiple of ", kVec);
  auto cl = at::MemoryFormat::ChannelsLast;
  auto xs = x.contiguous(cl);
  auto out = torch::empty(x.sizes(), x.options().memory_format(cl));
  if (out.numel() == 0) return out;
  // (C / kVec, k, k, kVec): the weights of one vector of channels side by side
  auto wt = weight.to(torch::kFloat32).reshape({C / kVec, kVec, k * k}).transpose(1, 2);
  wt = wt.contiguous();
  // bands of rows when the batch alone gives fewer than 4 work items per thread
  const int64_t bands = std::min(H, at::divup(4 * at::get_num_threads(), B));
  const int64_t band = at::divup(H, bands);
  dispatch_k(k, [&](auto size) {
    constexpr int K = decltype(size)::value;
    if (x.scalar_type() == torch::kFloat32) {
      forward<K>(xs.data_ptr<float>(), wt.data_ptr<float>(), out.data_ptr<float>(), B, C, H, W,
                 band);
    } else {
      forward<K>(xs.data_ptr<at::BFloat16>(), wt.data_ptr<float>(), out.data_ptr<at::BFloat16>(),
                 B, C, H, W, band);
    }
  });
  return out;
}

torch::Tensor depthwise_weight_grad(torch::Tensor x, torch::Tensor grad_out, int64_t k) {
  TORCH_CHECK(x.dim() == 4 && x.sizes() == grad_out.sizes(), "x and grad_out: same (B, C, H, W)");
  TORCH_CHECK(x.scalar_type() == grad_out.scalar_type(), "x and grad_out: same dtype");
  check_dtype(x);
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  TORCH_CHECK(C % kVec == 0, "channels must be a multiple of ", kVec);
  auto cl = at::MemoryFormat::ChannelsLast;
  auto xs = x.contiguous(cl);
  auto gs = grad_out.contiguous(cl);
  auto out = torch::zeros({C, 1, k, k}, x.options().dtype(torch::kFloat32));
  dispatch_k(k, [&](auto size) {
    constexpr int K = decltype(size)::value;
    if (x.scalar_type() == torch::kFloat32) {
      weight_grad<K>(xs.data_ptr<float>(), gs.data_ptr<float>(), out.data_ptr<float>(), B, C, H, W);
    } else {
      weight_grad<K>(xs.data_ptr<at::BFloat16>(), gs.data_ptr<at::BFloat16>(),
                     out.data_ptr<float>(), B, C, H, W);
    }
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("depthwise_forward", &depthwise_forward,
        "depthwise 'same' convolution, channels-last output, on CPU");
  m.attr("CHANNEL_BLOCK") = kVec;
  m.def("depthwise_weight_grad", &depthwise_weight_grad,
        "weight gradient of a depthwise 'same' convolution, channels-last, on CPU");
}
