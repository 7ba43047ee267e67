// Weight gradient of a depthwise k x k convolution with zero 'same' padding, on CPU,
// for channels-last tensors (B, H, W, C in memory), fp32 or bf16 in, fp32 out (C, k, k).
//
//   grad_w[c, i, j] = sum_{b, h, w} x[b, h + i - k/2, w + j - k/2, c] * g[b, h, w, c]
//
// Vectorised over channels: a block of 16 channels is one AVX-512 register of floats.
// One work item is a channel block; per image it converts the block's output gradient and
// zero-padded input to fp32 once (they stay in L2), then for each filter row i and image
// row keeps the k accumulators in registers while sweeping w four columns at a time (k is
// a template parameter, so the loops over j unroll). Threads split the channel blocks
// (at::parallel_for, OpenMP). A forward kernel of the same design ran slower than oneDNN's
// channels-last depthwise convolution, which therefore keeps the forward pass.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr int64_t kLanes = 16;

inline float as_float(float v) { return v; }
inline float as_float(at::BFloat16 v) {
  uint32_t bits = static_cast<uint32_t>(v.x) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// n pixels of 16 channels, ``stride`` elements apart, to contiguous fp32.
inline void to_floats(const float* src, int64_t stride, int64_t n, float* dst) {
  for (int64_t w = 0; w < n; ++w) std::memcpy(dst + w * kLanes, src + w * stride, kLanes * 4);
}

inline void to_floats(const at::BFloat16* src, int64_t stride, int64_t n, float* dst) {
  for (int64_t w = 0; w < n; ++w) {
#if defined(__AVX512F__)
    const __m256i half = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + w * stride));
    const __m512i wide = _mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16);
    _mm512_storeu_ps(dst + w * kLanes, _mm512_castsi512_ps(wide));
#else
    for (int64_t l = 0; l < kLanes; ++l) dst[w * kLanes + l] = as_float(src[w * stride + l]);
#endif
  }
}

// acc[j] += sum_w x[w + j] * g[w] over one image row, 16 channels per vector.
template <int K>
inline void accumulate_row(const float* x, const float* g, int64_t W, float (&acc)[K][kLanes]) {
#if defined(__AVX512F__)
  // Four output columns at a time: K + 3 loads of x and 4 of g feed 4 K multiply-adds
  // (each x vector serves up to four (w, j) pairs), into K accumulators held in registers.
  __m512 sum[K];
  for (int j = 0; j < K; ++j) sum[j] = _mm512_loadu_ps(acc[j]);
  int64_t w = 0;
  for (; w + 4 <= W; w += 4) {
    const __m512 g0 = _mm512_loadu_ps(g + (w + 0) * kLanes);
    const __m512 g1 = _mm512_loadu_ps(g + (w + 1) * kLanes);
    const __m512 g2 = _mm512_loadu_ps(g + (w + 2) * kLanes);
    const __m512 g3 = _mm512_loadu_ps(g + (w + 3) * kLanes);
    for (int t = 0; t < K + 3; ++t) {
      const __m512 xv = _mm512_loadu_ps(x + (w + t) * kLanes);
      if (t < K) sum[t] = _mm512_fmadd_ps(xv, g0, sum[t]);
      if (t >= 1 && t - 1 < K) sum[t - 1] = _mm512_fmadd_ps(xv, g1, sum[t - 1]);
      if (t >= 2 && t - 2 < K) sum[t - 2] = _mm512_fmadd_ps(xv, g2, sum[t - 2]);
      if (t >= 3) sum[t - 3] = _mm512_fmadd_ps(xv, g3, sum[t - 3]);
    }
  }
  for (; w < W; ++w) {
    const __m512 gv = _mm512_loadu_ps(g + w * kLanes);
    for (int j = 0; j < K; ++j) {
      sum[j] = _mm512_fmadd_ps(_mm512_loadu_ps(x + (w + j) * kLanes), gv, sum[j]);
    }
  }
  for (int j = 0; j < K; ++j) _mm512_storeu_ps(acc[j], sum[j]);
#else
  for (int64_t w = 0; w < W; ++w) {
    for (int j = 0; j < K; ++j) {
      for (int64_t l = 0; l < kLanes; ++l) acc[j][l] += x[(w + j) * kLanes + l] * g[w * kLanes + l];
    }
  }
#endif
}

template <int K, typename T>
void weight_grad(const T* x, const T* g, float* out, int64_t B, int64_t C, int64_t H, int64_t W) {
  constexpr int64_t pad = K / 2;
  const int64_t Wp = W + 2 * pad;
  at::parallel_for(0, C / kLanes, 1, [&](int64_t begin, int64_t end) {
    // one image's 16 channels in fp32: the output gradient and the zero-padded input
    // (256 + 330 KB at 64 x 64: they stay in L2 while all K x K offsets are summed)
    std::vector<float> gbuf(H * W * kLanes);
    std::vector<float> xbuf((H + 2 * pad) * Wp * kLanes, 0.0f);
    for (int64_t block = begin; block < end; ++block) {
      float acc[K][K][kLanes] = {};
      for (int64_t b = 0; b < B; ++b) {
        const int64_t offset = b * H * W * C + block * kLanes;
        for (int64_t h = 0; h < H; ++h) {
          to_floats(g + offset + h * W * C, C, W, gbuf.data() + h * W * kLanes);
          to_floats(x + offset + h * W * C, C, W, xbuf.data() + ((h + pad) * Wp + pad) * kLanes);
        }
        for (int i = 0; i < K; ++i) {
          for (int64_t h = 0; h < H; ++h) {
            accumulate_row<K>(xbuf.data() + (h + i) * Wp * kLanes, gbuf.data() + h * W * kLanes,
                              W, acc[i]);
          }
        }
      }
      for (int i = 0; i < K; ++i) {
        for (int j = 0; j < K; ++j) {
          for (int64_t l = 0; l < kLanes; ++l) {
            out[((block * kLanes + l) * K + i) * K + j] = acc[i][j][l];
          }
        }
      }
    }
  });
}

template <typename T>
void dispatch_k(int64_t k, const T* x, const T* g, float* out, int64_t B, int64_t C, int64_t H,
                int64_t W) {
  switch (k) {
    case 3: return weight_grad<3>(x, g, out, B, C, H, W);
    case 5: return weight_grad<5>(x, g, out, B, C, H, W);
    case 7: return weight_grad<7>(x, g, out, B, C, H, W);
    case 9: return weight_grad<9>(x, g, out, B, C, H, W);
    case 11: return weight_grad<11>(x, g, out, B, C, H, W);
    default: TORCH_CHECK(false, "kernel size ", k, " not compiled (3, 5, 7, 9, 11)");
  }
}

}  // namespace

torch::Tensor depthwise_weight_grad(torch::Tensor x, torch::Tensor grad_out, int64_t k) {
  TORCH_CHECK(x.dim() == 4 && x.sizes() == grad_out.sizes(), "x and grad_out: same (B, C, H, W)");
  TORCH_CHECK(x.scalar_type() == grad_out.scalar_type(), "x and grad_out: same dtype");
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  TORCH_CHECK(C % kLanes == 0, "channels must be a multiple of ", kLanes);
  auto cl = at::MemoryFormat::ChannelsLast;
  auto xs = x.contiguous(cl);
  auto gs = grad_out.contiguous(cl);
  auto out = torch::zeros({C, 1, k, k}, x.options().dtype(torch::kFloat32));
  if (x.scalar_type() == torch::kFloat32) {
    dispatch_k(k, xs.data_ptr<float>(), gs.data_ptr<float>(), out.data_ptr<float>(), B, C, H, W);
  } else {
    TORCH_CHECK(x.scalar_type() == torch::kBFloat16, "dtype must be float32 or bfloat16");
    dispatch_k(k, xs.data_ptr<at::BFloat16>(), gs.data_ptr<at::BFloat16>(),
               out.data_ptr<float>(), B, C, H, W);
  }
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("depthwise_weight_grad", &depthwise_weight_grad,
        "weight gradient of a depthwise 'same' convolution, channels-last, on CPU");
}
