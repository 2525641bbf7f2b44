//! The AVX2 lane engine: SipHash-2-4 of eight lanes at a time, four per
//! 256-bit register, written with the instructions themselves.
//!
//! Left to itself, the compiler does not vectorise the plain lane loops
//! for AVX2: AVX2 has no 64-bit rotate, and SipHash rotates six times a
//! round, so the compiler judges general-purpose registers cheaper and
//! makes scalar code of eight interleaved lanes — 32 state words in 16
//! registers, spilled to the stack on every round. Here the rotates by 32
//! and 16 bits are one shuffle each (they move whole bytes) and the other
//! three are two shifts and an OR, so a round is 20 instructions for four
//! lanes, all in registers.
//!
//! The intrinsics are `pulp`'s safe wrappers, callable only with its
//! `V3` token, which exists only on a CPU that has AVX2.

use std::arch::x86_64::__m256i;

use pulp::bytemuck::cast;
use pulp::x86::V3;
use pulp::{Simd, WithSimd};

use super::{BlockHasher, BlockState, HashLanes, Lanes};

/// One state word of a block's eight lanes, four lanes per register.
type Word = [__m256i; 2];

/// Hashes `op`'s blocks with AVX2.
#[inline(always)]
pub(super) fn hash<const BLOCKS: usize>(simd: V3, op: HashLanes<'_, BLOCKS>) {
    Simd::vectorize(simd, Avx2Lanes { simd, op });
}

/// `op` with the token, so that the code `vectorize` compiles for AVX2
/// can call the instructions.
struct Avx2Lanes<'a, const BLOCKS: usize> {
    simd: V3,
    op: HashLanes<'a, BLOCKS>,
}

impl<const BLOCKS: usize> WithSimd for Avx2Lanes<'_, BLOCKS> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        self.op.each_block(&Ops::new(self.simd));
    }
}

/// The operations of a SipRound on [`Word`]s.
#[derive(Clone, Copy)]
struct Ops {
    simd: V3,
    /// `vpshufb` indexes that rotate each 64-bit lane left by 16 bits:
    /// byte `i` of the result is byte `i - 2 (mod 8)` of the lane.
    rotl16: __m256i,
}

impl Ops {
    #[inline(always)]
    fn new(simd: V3) -> Self {
        const IDX: [u8; 32] = [
            6, 7, 0, 1, 2, 3, 4, 5, 14, 15, 8, 9, 10, 11, 12, 13, //
            6, 7, 0, 1, 2, 3, 4, 5, 14, 15, 8, 9, 10, 11, 12, 13,
        ];
        Ops {
            simd,
            rotl16: cast(IDX),
        }
    }

    #[inline(always)]
    fn splat(self, w: u64) -> Word {
        let x = self.simd.avx._mm256_set1_epi64x(w as i64);
        [x, x]
    }

    #[inline(always)]
    fn add(self, a: Word, b: Word) -> Word {
        let s = self.simd.avx2;
        [
            s._mm256_add_epi64(a[0], b[0]),
            s._mm256_add_epi64(a[1], b[1]),
        ]
    }

    #[inline(always)]
    fn xor(self, a: Word, b: Word) -> Word {
        let s = self.simd.avx2;
        [
            s._mm256_xor_si256(a[0], b[0]),
            s._mm256_xor_si256(a[1], b[1]),
        ]
    }

    #[inline(always)]
    fn or(self, a: Word, b: Word) -> Word {
        let s = self.simd.avx2;
        [s._mm256_or_si256(a[0], b[0]), s._mm256_or_si256(a[1], b[1])]
    }

    /// Rotates left by `L` bits; `R` must be `64 - L`.
    #[inline(always)]
    fn rotl<const L: i32, const R: i32>(self, a: Word) -> Word {
        let s = self.simd.avx2;
        [
            s._mm256_or_si256(
                s._mm256_slli_epi64::<L>(a[0]),
                s._mm256_srli_epi64::<R>(a[0]),
            ),
            s._mm256_or_si256(
                s._mm256_slli_epi64::<L>(a[1]),
                s._mm256_srli_epi64::<R>(a[1]),
            ),
        ]
    }

    /// Rotates by 32 bits: swaps each lane's 32-bit halves.
    #[inline(always)]
    fn rotl32(self, a: Word) -> Word {
        let s = self.simd.avx2;
        [
            s._mm256_shuffle_epi32::<0b10_11_00_01>(a[0]),
            s._mm256_shuffle_epi32::<0b10_11_00_01>(a[1]),
        ]
    }

    #[inline(always)]
    fn rotl16(self, a: Word) -> Word {
        let s = self.simd.avx2;
        [
            s._mm256_shuffle_epi8(a[0], self.rotl16),
            s._mm256_shuffle_epi8(a[1], self.rotl16),
        ]
    }

    #[inline(always)]
    fn round(self, [v0, v1, v2, v3]: &mut [Word; 4]) {
        *v0 = self.add(*v0, *v1);
        *v1 = self.xor(self.rotl::<13, 51>(*v1), *v0);
        *v0 = self.rotl32(*v0);
        *v2 = self.add(*v2, *v3);
        *v3 = self.xor(self.rotl16(*v3), *v2);
        *v0 = self.add(*v0, *v3);
        *v3 = self.xor(self.rotl::<21, 43>(*v3), *v0);
        *v2 = self.add(*v2, *v1);
        *v1 = self.xor(self.rotl::<17, 47>(*v1), *v2);
        *v2 = self.rotl32(*v2);
    }

    #[inline(always)]
    fn compress(self, v: &mut [Word; 4], m: Word) {
        v[3] = self.xor(v[3], m);
        self.round(v);
        self.round(v);
        v[0] = self.xor(v[0], m);
    }
}

/// The same hashes as the portable `hash_block`.
impl BlockHasher for Ops {
    #[inline(always)]
    fn block(&self, key: &BlockState, m0: &Lanes, m1: &Lanes, len: u8) -> Lanes {
        let mut v: [Word; 4] = [cast(key[0]), cast(key[1]), cast(key[2]), cast(key[3])];
        let last = if len >= 8 {
            self.compress(&mut v, cast(*m0));
            m1
        } else {
            m0
        };
        let fin = self.or(cast(*last), self.splat(u64::from(len) << 56));
        self.compress(&mut v, fin);
        v[2] = self.xor(v[2], self.splat(0xff));
        for _ in 0..4 {
            self.round(&mut v);
        }
        let [v0, v1, v2, v3] = v;
        cast(self.xor(self.xor(v0, v1), self.xor(v2, v3)))
    }
}
