// ref_float.c — scalar reference kernels for the float weight types F32, F16, BF16.
// Their vec_dot_type is F32: the activation row is used as float, the weight converted per element.
#include <string.h>

#include "kernels/kernels_impl.h"

void ref_to_float_f32(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}
void ref_from_float_f32(const float *src, void *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}
void ref_vec_dot_f32(int64_t n, float *s, const void *w, const void *x) {
    const float *a = w, *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += a[i] * b[i];
    *s = sum;
}

void ref_to_float_f16(const void *src, float *dst, int64_t n) {
    const tv_f16 *h = src;
    for (int64_t i = 0; i < n; i++) dst[i] = f16_to_f32(h[i]);
}
void ref_from_float_f16(const float *src, void *dst, int64_t n) {
    tv_f16 *h = dst;
    for (int64_t i = 0; i < n; i++) h[i] = f32_to_f16(src[i]);
}
void ref_vec_dot_f16(int64_t n, float *s, const void *w, const void *x) {
    const tv_f16 *a = w;
    const float *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += f16_to_f32(a[i]) * b[i];
    *s = sum;
}

void ref_to_float_bf16(const void *src, float *dst, int64_t n) {
    const tv_bf16 *h = src;
    for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(h[i]);
}
void ref_from_float_bf16(const float *src, void *dst, int64_t n) {
    tv_bf16 *h = dst;
    for (int64_t i = 0; i < n; i++) h[i] = f32_to_bf16(src[i]);
}
void ref_vec_dot_bf16(int64_t n, float *s, const void *w, const void *x) {
    const tv_bf16 *a = w;
    const float *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += bf16_to_f32(a[i]) * b[i];
    *s = sum;
}

void ref_axpy_f32(int64_t n, float a, const void *x, float *y) {
    const float *v = x;
    for (int64_t i = 0; i < n; i++) y[i] += a * v[i];
}
void ref_axpy_f16(int64_t n, float a, const void *x, float *y) {
    const tv_f16 *v = x;
    for (int64_t i = 0; i < n; i++) y[i] += a * f16_to_f32(v[i]);
}
void ref_axpy_bf16(int64_t n, float a, const void *x, float *y) {
    const tv_bf16 *v = x;
    for (int64_t i = 0; i < n; i++) y[i] += a * bf16_to_f32(v[i]);
}
