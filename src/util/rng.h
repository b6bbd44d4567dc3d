// rng.h — the one random-number generator of the tree: splitmix64 (Steele, Lea & Flood 2014) as a
// stateless 64-bit mixer and as a stream, and xoshiro256** (Blackman & Vigna 2018) seeded from it.
// Everything here is pure arithmetic on caller-owned state: no globals, same sequence on every CPU.
#ifndef TV_UTIL_RNG_H
#define TV_UTIL_RNG_H

#include <stdint.h>

#define RNG_GOLDEN 0x9e3779b97f4a7c15ull   // 2^64 / golden ratio: splitmix64's increment

// splitmix64 output for state x (x advanced once, then mixed): a counter-based hash of x.
static inline uint64_t rng_hash64(uint64_t x) {
    x += RNG_GOLDEN;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// The splitmix64 stream: the next value of *state, advancing it.
static inline uint64_t rng_splitmix64(uint64_t *state) {
    uint64_t z = rng_hash64(*state);
    *state += RNG_GOLDEN;
    return z;
}

// xoshiro256**: 256 bits of state, period 2^256 - 1; seeded by four splitmix64 draws of the seed.
typedef struct { uint64_t s[4]; } rng_xoshiro;

static inline void rng_xoshiro_seed(rng_xoshiro *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = rng_splitmix64(&seed);
}

static inline uint64_t rng_rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_xoshiro_next(rng_xoshiro *r) {
    uint64_t *s = r->s;
    uint64_t result = rng_rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rng_rotl64(s[3], 45);
    return result;
}

// Uniform double in [0, 1) from the top 53 bits of one draw.
static inline double rng_xoshiro_uniform(rng_xoshiro *r) { return (double)(rng_xoshiro_next(r) >> 11) * 0x1.0p-53; }

#endif
