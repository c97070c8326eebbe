/* Arithmetic of every ISA class, written so that clang cannot fold it: `a` and `b` come from the packet (in the
 * BPF program) or the command line (in the native build, isa_native.c); both must compute the same values.
 * Compiled for BPF with -mcpu=v4 (signed division, sign-extending moves and loads, byte swaps, atomics). */
#define ISA_RESULTS 48

static __attribute__((noinline)) __u64 mix(__u64 x, __u64 y) { return (x ^ (y << 7)) + (y >> 3); }
static __attribute__((noinline)) __u64 mix2(__u64 x, __u64 y) { return mix(x, y) * 3 + mix(y, x); }

static inline __attribute__((always_inline)) void isa_compute(__u64 a, __u64 b, volatile __u64 *out)
{
    __u32 a32 = (__u32)a, b32 = (__u32)b;
    __s64 sa = (__s64)a, sb = (__s64)b;
    __s32 sa32 = (__s32)a32, sb32 = (__s32)b32;
    int i = 0;
    out[i++] = a + b;
    out[i++] = a - b;
    out[i++] = a * b;
    out[i++] = b ? a / b : 7;
    out[i++] = b ? a % b : 9;
    out[i++] = a | b;
    out[i++] = a & b;
    out[i++] = a ^ b;
    out[i++] = a << (b & 63);
    out[i++] = a >> (b & 63);
    out[i++] = (__u64)(sa >> (b & 63));
    out[i++] = (__u64)(-sa);
    out[i++] = (__u32)(a32 + b32);
    out[i++] = (__u32)(a32 - b32);
    out[i++] = (__u32)(a32 * b32);
    out[i++] = b32 ? a32 / b32 : 11;
    out[i++] = b32 ? a32 % b32 : 13;
    out[i++] = (__u32)(a32 << (b32 & 31));
    out[i++] = a32 >> (b32 & 31);
    out[i++] = (__u32)(sa32 >> (b32 & 31));
    out[i++] = (sb != 0 && !(sa == (-0x7fffffffffffffffLL - 1) && sb == -1)) ? (__u64)(sa / sb) : 17;
    out[i++] = (sb != 0 && !(sa == (-0x7fffffffffffffffLL - 1) && sb == -1)) ? (__u64)(sa % sb) : 19;
    out[i++] = (sb32 != 0 && !(sa32 == (-0x7fffffff - 1) && sb32 == -1)) ? (__u32)(sa32 / sb32) : 23;
    out[i++] = (sb32 != 0 && !(sa32 == (-0x7fffffff - 1) && sb32 == -1)) ? (__u32)(sa32 % sb32) : 29;
    out[i++] = (__u64)(__s64)(__s8)a;
    out[i++] = (__u64)(__s64)(__s16)a;
    out[i++] = (__u64)(__s64)(__s32)a;
    out[i++] = __builtin_bswap16((__u16)a);
    out[i++] = __builtin_bswap32((__u32)a);
    out[i++] = __builtin_bswap64(a);
    out[i++] = (a > b) + 2 * (sa > sb) + 4 * (a32 < b32) + 8 * (sa32 < sb32) + 16 * ((a & b) != 0) + 32 * (a == b);
    out[i++] = (a >= b) + 2 * (sa >= sb) + 4 * (a32 <= b32) + 8 * (sa32 <= sb32) + 16 * (a32 == b32) + 32 * (a != b);
    out[i++] = (a > 1000) + 2 * (sa < -5) + 4 * (a32 > 77u) + 8 * (sa32 >= -3) + 16 * ((a & 0x80) != 0);
    out[i++] = mix(a, b);
    out[i++] = mix2(a, b);
    __u64 cell = a;
    out[i++] = __sync_fetch_and_add(&cell, b);
    out[i++] = __sync_fetch_and_or(&cell, b);
    out[i++] = __sync_fetch_and_and(&cell, a);
    out[i++] = __sync_fetch_and_xor(&cell, b);
    out[i++] = __sync_lock_test_and_set(&cell, a ^ 0x5555);
    out[i++] = __sync_val_compare_and_swap(&cell, a ^ 0x5555, b);
    out[i++] = __sync_val_compare_and_swap(&cell, 12345, a);
    out[i++] = cell;
    __u32 cell32 = a32;
    out[i++] = __sync_fetch_and_add(&cell32, b32);
    out[i++] = __sync_val_compare_and_swap(&cell32, a32 + b32, 99);
    out[i++] = cell32;
    __s8 small = (__s8)(a >> 8);
    out[i++] = (__u64)(__s64)small * 3;
    out[i++] = (__u64)((__s64)(__s16)(b >> 4) / 3);
}
