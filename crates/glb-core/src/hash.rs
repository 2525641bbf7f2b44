//! Keyed hashing: SipHash-2-4 as used for table generation and flow hashing.

use std::fmt;
use std::hash::Hasher;
use std::ops::Range;

use siphasher::sip::SipHasher24;

#[cfg(target_arch = "x86_64")]
mod avx2;

/// One SipRound on four state words (places), shared by the one-message
/// hasher and the lane-parallel one.
macro_rules! sip_round {
    ($v0:expr, $v1:expr, $v2:expr, $v3:expr) => {{
        $v0 = $v0.wrapping_add($v1);
        $v1 = $v1.rotate_left(13) ^ $v0;
        $v0 = $v0.rotate_left(32);
        $v2 = $v2.wrapping_add($v3);
        $v3 = $v3.rotate_left(16) ^ $v2;
        $v0 = $v0.wrapping_add($v3);
        $v3 = $v3.rotate_left(21) ^ $v0;
        $v2 = $v2.wrapping_add($v1);
        $v1 = $v1.rotate_left(17) ^ $v2;
        $v2 = $v2.rotate_left(32);
    }};
}

/// A 16-byte secret (`hash_key` or `seed`).
///
/// Its `Debug` output is redacted so that a stray `{:?}` in a log line can
/// never leak the key; use [`Key16::expose`] where the bytes are needed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Key16([u8; 16]);

impl Key16 {
    /// Wraps raw key bytes.
    pub const fn new(bytes: [u8; 16]) -> Self {
        Key16(bytes)
    }

    /// The key bytes, for hashing or for writing into a binary table.
    pub const fn expose(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parses exactly 32 hexadecimal digits (either case).
    pub fn from_hex(text: &str) -> Result<Self, HexKeyError> {
        let digits = text.as_bytes();
        if digits.len() != 32 {
            return Err(HexKeyError::Length(digits.len()));
        }
        let mut out = [0u8; 16];
        for (i, pair) in digits.chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or(HexKeyError::NotHex(i * 2))?;
            let lo = hex_value(pair[1]).ok_or(HexKeyError::NotHex(i * 2 + 1))?;
            out[i] = (hi << 4) | lo;
        }
        Ok(Key16(out))
    }

    /// A SipHash-2-4 hasher keyed with this key, ready to absorb a message.
    pub fn hasher(&self) -> SipHasher24 {
        SipHasher24::new_with_key(&self.0)
    }

    /// SipHash-2-4 of `message` under this key, as the reference
    /// implementation's 8 output bytes read little-endian.
    pub fn siphash(&self, message: &[u8]) -> u64 {
        let mut h = self.hasher();
        h.write(message);
        h.finish()
    }
}

/// SipHash-2-4 under one key, for hashing many short messages (the
/// director's flow hash): the key-derived starting state is computed once,
/// and a message is absorbed from registers in pieces of known size
/// rather than through a byte buffer. The output is that of
/// [`Key16::siphash`] on the concatenated pieces.
///
/// Its `Debug` output is redacted: the state reveals the key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SipKey {
    v: [u64; 4],
}

impl SipKey {
    /// Derives the starting state from `key`.
    pub fn new(key: &Key16) -> Self {
        let [a, b] = [0, 8].map(|i| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&key.0[i..i + 8]);
            u64::from_le_bytes(w)
        });
        // The initialisation constants of the SipHash paper.
        SipKey {
            v: [
                a ^ 0x736f_6d65_7073_6575,
                b ^ 0x646f_7261_6e64_6f6d,
                a ^ 0x6c79_6765_6e65_7261,
                b ^ 0x7465_6462_7974_6573,
            ],
        }
    }

    /// SipHash-2-4 of a short message: the same value as
    /// [`Key16::siphash`] of its bytes, computed without a buffer.
    #[inline(always)]
    pub fn hash_short(&self, msg: ShortMsg) -> u64 {
        let mut h = self.start();
        let [lo, hi] = msg.words();
        if msg.len >= 8 {
            h.compress(lo);
        }
        h.len = u64::from(msg.len);
        h.tail = if msg.len >= 8 { hi } else { lo };
        h.finish()
    }

    /// Starts hashing a message.
    #[inline(always)]
    pub fn start(&self) -> Sip24 {
        Sip24 {
            v: self.v,
            tail: 0,
            ntail: 0,
            len: 0,
        }
    }
}

impl fmt::Debug for SipKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SipKey(<redacted>)")
    }
}

/// A SipHash-2-4 computation in progress (see [`SipKey`]).
#[derive(Clone, Copy)]
pub struct Sip24 {
    v: [u64; 4],
    /// Bytes not yet absorbed, little-endian, `ntail` of them.
    tail: u64,
    ntail: u32,
    /// Message length so far (only its low byte enters the hash).
    len: u64,
}

impl fmt::Debug for Sip24 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sip24(<redacted>)")
    }
}

impl Sip24 {
    #[inline(always)]
    fn round(&mut self) {
        let [v0, v1, v2, v3] = &mut self.v;
        sip_round!(*v0, *v1, *v2, *v3);
    }

    #[inline(always)]
    fn compress(&mut self, m: u64) {
        self.v[3] ^= m;
        self.round();
        self.round();
        self.v[0] ^= m;
    }

    /// Absorbs `n` bytes (1 to 8) held little-endian in `word`, whose
    /// bytes above `n` are zero.
    #[inline(always)]
    fn absorb(&mut self, word: u64, n: u32) {
        self.len += u64::from(n);
        // `ntail` is below 8, so every shift here is below 64 bits.
        let joined = self.tail | (word << (8 * self.ntail));
        let filled = self.ntail + n;
        if filled >= 8 {
            self.compress(joined);
            self.tail = if self.ntail == 0 {
                0
            } else {
                word >> (64 - 8 * self.ntail)
            };
            self.ntail = filled - 8;
        } else {
            self.tail = joined;
            self.ntail = filled;
        }
    }

    /// Appends `bytes` to the message.
    #[inline(always)]
    pub fn write<const N: usize>(&mut self, bytes: &[u8; N]) {
        for piece in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..piece.len()].copy_from_slice(piece);
            self.absorb(u64::from_le_bytes(w), piece.len() as u32);
        }
    }

    /// The hash of the message, read little-endian.
    #[inline(always)]
    pub fn finish(mut self) -> u64 {
        let last = (self.len << 56) | self.tail;
        self.compress(last);
        self.v[2] ^= 0xff;
        for _ in 0..4 {
            self.round();
        }
        let [v0, v1, v2, v3] = self.v;
        v0 ^ v1 ^ v2 ^ v3
    }
}

/// A message of at most [`ShortMsg::MAX_LEN`] bytes held in an integer,
/// little-endian, so it can be hashed from registers. The director's
/// IPv4 flow hashes (at most 12 bytes) are all of this kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortMsg {
    /// Byte `i` of the message is bits `8 * i .. 8 * i + 8`; bits past the
    /// length are zero.
    pub bytes: u128,
    /// The message length in bytes.
    pub len: u8,
}

impl ShortMsg {
    /// The longest message: SipHash absorbs at most one full word before
    /// its final block, which holds up to seven more bytes.
    pub const MAX_LEN: u8 = 15;

    /// A message from its bytes (at most [`ShortMsg::MAX_LEN`] of them;
    /// the rest are ignored).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let len = bytes.len().min(usize::from(Self::MAX_LEN));
        let mut b = [0u8; 16];
        b[..len].copy_from_slice(&bytes[..len]);
        ShortMsg {
            bytes: u128::from_le_bytes(b),
            len: len as u8,
        }
    }

    /// The two 64-bit words SipHash absorbs: the first eight bytes and
    /// the rest.
    #[inline(always)]
    fn words(self) -> [u64; 2] {
        [self.bytes as u64, (self.bytes >> 64) as u64]
    }
}

/// Lanes in one block of [`SipLanes`]: eight 64-bit words fill one
/// AVX-512 register, or two AVX2 ones.
pub const LANE_BLOCK: usize = 8;

/// SipHash-2-4 of many short messages side by side, one message per
/// lane, each under its own key: the flow hashes of a whole batch of
/// packets computed with vector instructions, several times faster than
/// one after another.
///
/// Load each lane with [`SipLanes::load`] and run [`SipLanes::hash`]
/// once — or, when every message is under one key, load just the
/// messages ([`SipLanes::load_message`]) and run [`SipLanes::hash_under`]
/// — then read each lane's hash with [`SipLanes::get`]. Every lane of one
/// run holds a message of the same length. Lanes that were not loaded are
/// hashed too (cheaper than skipping them); their results mean nothing.
///
/// Its `Debug` output is redacted: the lanes hold key-derived state.
#[derive(Clone)]
pub struct SipLanes<const BLOCKS: usize> {
    /// The lanes' key states, word by word: `v[w]` holds word `w` of
    /// every lane, in lane order, so each step of SipHash is one vector
    /// operation across a block of lanes.
    v: [Words<BLOCKS>; 4],
    /// The lanes' message words, the same way.
    m: [Words<BLOCKS>; 2],
    /// The hashes; hashing leaves the lanes as they were, so a block can
    /// be hashed again after more lanes were loaded.
    out: Words<BLOCKS>,
}

/// One 64-bit word in each lane of a block.
type Lanes = [u64; LANE_BLOCK];

/// One 64-bit word per lane, in blocks of [`LANE_BLOCK`].
type Words<const BLOCKS: usize> = [Lanes; BLOCKS];

/// The lanes of one block, one array per state word.
type BlockState = [Lanes; 4];

/// One SipRound in every lane of a block.
#[inline(always)]
fn round_lanes(v: &mut BlockState) {
    let [v0, v1, v2, v3] = v;
    for i in 0..LANE_BLOCK {
        sip_round!(v0[i], v1[i], v2[i], v3[i]);
    }
}

#[inline(always)]
fn compress_lanes(v: &mut BlockState, m: &Lanes) {
    for (w, x) in v[3].iter_mut().zip(m) {
        *w ^= x;
    }
    round_lanes(v);
    round_lanes(v);
    for (w, x) in v[0].iter_mut().zip(m) {
        *w ^= x;
    }
}

/// Hashes every lane's `len`-byte message (words `m0` and `m1`),
/// starting from the key state `v`, into `out`. Written as plain loops
/// over the lanes, which the compiler turns into vector code for
/// whatever instruction set it is compiled for (see [`HashLanes`]).
#[inline(always)]
fn hash_block(mut v: BlockState, m0: &Lanes, m1: &Lanes, len: u8, out: &mut Lanes) {
    let last = if len >= 8 {
        compress_lanes(&mut v, m0);
        m1
    } else {
        m0
    };
    let fin = last.map(|w| w | (u64::from(len) << 56));
    compress_lanes(&mut v, &fin);
    for w in &mut v[2] {
        *w ^= 0xff;
    }
    for _ in 0..4 {
        round_lanes(&mut v);
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = v[0][i] ^ v[1][i] ^ v[2][i] ^ v[3][i];
    }
}

/// The hashing of [`SipLanes::hash`] over some blocks of lanes: the
/// lanes' own key states or one shared key, their messages, and where the
/// hashes go.
struct HashLanes<'a, const BLOCKS: usize> {
    v: &'a [Words<BLOCKS>; 4],
    m: &'a [Words<BLOCKS>; 2],
    blocks: Range<usize>,
    out: &'a mut [Lanes],
    len: u8,
    /// The key state for all lanes, or `None` for each lane's own.
    key: Option<[u64; 4]>,
}

/// How one engine hashes a block of lanes: from the key state (word by
/// word), the two message words and the length, the eight hashes. (A
/// trait rather than a closure: the engines' code must be inlined into
/// the function compiled for their instruction set, which a closure the
/// compiler keeps apart would not be.)
trait BlockHasher {
    fn block(&self, v: &BlockState, m0: &Lanes, m1: &Lanes, len: u8) -> Lanes;
}

impl<const BLOCKS: usize> HashLanes<'_, BLOCKS> {
    /// Hashes every block with `h`: each block's key state is the lanes'
    /// own or the shared key's. Two loops rather than a choice per block,
    /// so each compiles to straight code.
    #[inline(always)]
    fn each_block<H: BlockHasher>(self, h: &H) {
        let [m0, m1] = self.m;
        let v = self.v;
        let blocks = self.blocks.zip(self.out);
        match self.key {
            Some(k) => {
                let key = [
                    [k[0]; LANE_BLOCK],
                    [k[1]; LANE_BLOCK],
                    [k[2]; LANE_BLOCK],
                    [k[3]; LANE_BLOCK],
                ];
                for (b, out) in blocks {
                    *out = h.block(&key, &m0[b], &m1[b], self.len);
                }
            }
            None => {
                for (b, out) in blocks {
                    let own = [v[0][b], v[1][b], v[2][b], v[3][b]];
                    *out = h.block(&own, &m0[b], &m1[b], self.len);
                }
            }
        }
    }
}

/// The lanes as plain loops, which the compiler turns into vector code
/// for the instruction set `pulp` compiles it for: AVX-512, whose 64-bit
/// rotate is one instruction, makes straight vector code of it.
struct Interleaved;

impl BlockHasher for Interleaved {
    #[inline(always)]
    fn block(&self, v: &BlockState, m0: &Lanes, m1: &Lanes, len: u8) -> Lanes {
        let mut out = [0; LANE_BLOCK];
        hash_block(*v, m0, m1, len, &mut out);
        out
    }
}

impl<const BLOCKS: usize> pulp::WithSimd for HashLanes<'_, BLOCKS> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        self.each_block(&Interleaved);
    }
}

/// The portable engine: one lane after another, each lane's four state
/// words in registers. Side by side in general-purpose registers, eight
/// lanes' 32 words would not fit in the 16 there are, and the spills
/// would cost more than the interleaving saves.
struct OneByOne;

impl BlockHasher for OneByOne {
    #[inline(always)]
    fn block(&self, v: &BlockState, m0: &Lanes, m1: &Lanes, len: u8) -> Lanes {
        let mut out = [0; LANE_BLOCK];
        for (i, o) in out.iter_mut().enumerate() {
            let key = SipKey {
                v: [v[0][i], v[1][i], v[2][i], v[3][i]],
            };
            let bytes = u128::from(m0[i]) | (u128::from(m1[i]) << 64);
            *o = key.hash_short(ShortMsg { bytes, len });
        }
        out
    }
}

impl<const BLOCKS: usize> Default for SipLanes<BLOCKS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const BLOCKS: usize> SipLanes<BLOCKS> {
    /// How many lanes there are.
    pub const LANES: usize = BLOCKS * LANE_BLOCK;

    /// Lanes holding nothing yet.
    pub const fn new() -> Self {
        SipLanes {
            v: [[[0; LANE_BLOCK]; BLOCKS]; 4],
            m: [[[0; LANE_BLOCK]; BLOCKS]; 2],
            out: [[0; LANE_BLOCK]; BLOCKS],
        }
    }

    /// Puts `msg` under `key` into `lane`. A lane past the end is ignored.
    #[inline(always)]
    pub fn load(&mut self, lane: usize, key: &SipKey, msg: ShortMsg) {
        self.set_key(lane, key);
        self.load_message(lane, msg);
    }

    /// Puts `msg` into `lane`, keeping the lane's key. A lane past the
    /// end is ignored.
    #[inline(always)]
    pub fn load_message(&mut self, lane: usize, msg: ShortMsg) {
        if lane < Self::LANES {
            let [lo, hi] = msg.words();
            self.m[0].as_flattened_mut()[lane] = lo;
            self.m[1].as_flattened_mut()[lane] = hi;
        }
    }

    /// Sets the key of `lane`. A lane past the end is ignored.
    #[inline(always)]
    pub fn set_key(&mut self, lane: usize, key: &SipKey) {
        if lane < Self::LANES {
            for (w, k) in self.v.iter_mut().zip(key.v) {
                w.as_flattened_mut()[lane] = k;
            }
        }
    }

    /// Hashes lanes `lanes` (widened to whole blocks), each holding a
    /// message of `len` bytes (at most [`ShortMsg::MAX_LEN`]) under its
    /// own key, with `engine`'s instructions.
    #[inline]
    pub fn hash(&mut self, engine: LaneEngine, len: u8, lanes: Range<usize>) {
        self.run(engine, len, lanes, None);
    }

    /// [`SipLanes::hash`] with every lane under `key`, whatever key the
    /// lanes were loaded with: the key goes straight into vector
    /// registers, no lane needs its own copy.
    #[inline]
    pub fn hash_under(&mut self, engine: LaneEngine, len: u8, lanes: Range<usize>, key: &SipKey) {
        self.run(engine, len, lanes, Some(key.v));
    }

    #[inline(always)]
    fn run(&mut self, engine: LaneEngine, len: u8, lanes: Range<usize>, key: Option<[u64; 4]>) {
        let blocks = block_range::<BLOCKS>(lanes);
        let op = HashLanes {
            v: &self.v,
            m: &self.m,
            out: &mut self.out[blocks.clone()],
            blocks,
            len: len.min(ShortMsg::MAX_LEN),
            key,
        };
        match engine.0 {
            #[cfg(target_arch = "x86_64")]
            pulp::Arch::V3(v3) => avx2::hash(v3, op),
            pulp::Arch::Scalar => op.each_block(&OneByOne),
            #[allow(unreachable_patterns)]
            arch => arch.dispatch(op),
        }
    }

    /// The hashes of all lanes, in lane order (see [`SipLanes::get`]).
    #[inline(always)]
    pub fn hashes(&self) -> &[u64] {
        self.out.as_flattened()
    }

    /// The hash of `lane` computed by the last [`SipLanes::hash`] that
    /// covered it (0 for a lane past the end).
    #[inline(always)]
    pub fn get(&self, lane: usize) -> u64 {
        self.out.as_flattened().get(lane).copied().unwrap_or(0)
    }
}

/// The blocks that hold `lanes`, clamped to the `BLOCKS` there are.
fn block_range<const BLOCKS: usize>(lanes: Range<usize>) -> Range<usize> {
    let first = (lanes.start / LANE_BLOCK).min(BLOCKS);
    first..lanes.end.div_ceil(LANE_BLOCK).clamp(first, BLOCKS)
}

impl<const BLOCKS: usize> fmt::Debug for SipLanes<BLOCKS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SipLanes({} lanes, <redacted>)", Self::LANES)
    }
}

/// The instruction set [`SipLanes::hash`] runs on, detected at run time so
/// one binary uses AVX-512 or AVX2 where the CPU has them and plain x86-64
/// code elsewhere.
#[derive(Debug, Clone, Copy)]
pub struct LaneEngine(pulp::Arch);

impl LaneEngine {
    /// The best instruction set this CPU offers.
    pub fn detect() -> Self {
        LaneEngine(pulp::Arch::new())
    }

    /// Code for the baseline instruction set, which runs everywhere.
    pub fn portable() -> Self {
        LaneEngine(pulp::Arch::Scalar)
    }

    /// Every instruction set this CPU can run the lanes on, best first
    /// (for tests and benchmarks that compare them).
    pub fn available() -> Vec<LaneEngine> {
        let mut out = vec![Self::detect()];
        #[cfg(target_arch = "x86_64")]
        if let Some(v3) = pulp::x86::V3::try_new() {
            out.push(LaneEngine(pulp::Arch::V3(v3)));
        }
        out.push(Self::portable());
        out.dedup_by(|a, b| a.name() == b.name());
        out
    }

    /// The engine an operator names: `auto` (the best this CPU has,
    /// [`LaneEngine::detect`]), `avx512`, `avx2` or `portable`. An engine
    /// the CPU cannot run is refused rather than replaced.
    pub fn named(name: &str) -> Result<Self, LaneEngineError> {
        match name {
            "auto" => Ok(Self::detect()),
            "portable" => Ok(Self::portable()),
            #[cfg(target_arch = "x86_64")]
            "avx512" => pulp::x86::V4::try_new()
                .map(|v4| LaneEngine(pulp::Arch::V4(v4)))
                .ok_or(LaneEngineError::Unsupported("avx512")),
            #[cfg(target_arch = "x86_64")]
            "avx2" => pulp::x86::V3::try_new()
                .map(|v3| LaneEngine(pulp::Arch::V3(v3)))
                .ok_or(LaneEngineError::Unsupported("avx2")),
            #[cfg(not(target_arch = "x86_64"))]
            "avx512" => Err(LaneEngineError::Unsupported("avx512")),
            #[cfg(not(target_arch = "x86_64"))]
            "avx2" => Err(LaneEngineError::Unsupported("avx2")),
            other => Err(LaneEngineError::Unknown(other.to_owned())),
        }
    }

    /// A short name for logs: `avx512`, `avx2` or `portable` (`simd`
    /// for other vector sets).
    pub fn name(&self) -> &'static str {
        match self.0 {
            pulp::Arch::Scalar => "portable",
            #[cfg(target_arch = "x86_64")]
            pulp::Arch::V4(_) => "avx512",
            #[cfg(target_arch = "x86_64")]
            pulp::Arch::V3(_) => "avx2",
            #[allow(unreachable_patterns)]
            _ => "simd",
        }
    }
}

impl std::str::FromStr for LaneEngine {
    type Err = LaneEngineError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::named(name)
    }
}

impl fmt::Display for LaneEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why [`LaneEngine::named`] refused a name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaneEngineError {
    /// Not the name of an engine.
    #[error("unknown lane engine {0:?} (expected auto, avx512, avx2 or portable)")]
    Unknown(String),
    /// This CPU lacks the instructions.
    #[error("this CPU has no {0} instructions (use auto or portable)")]
    Unsupported(&'static str),
}

impl fmt::Debug for Key16 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key16(<redacted>)")
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Why a 32-digit hex key was refused. The messages never echo the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexKeyError {
    /// The string is not 32 characters long.
    #[error("must be exactly 32 hex digits (16 bytes), got {0} characters")]
    Length(usize),
    /// A character at the given position is not a hex digit.
    #[error("character {} is not a hex digit", .0 + 1)]
    NotHex(usize),
}

/// The state of SipHash-2-4 after the first 8-byte word of a message,
/// from which many messages that share that word are finished (see
/// [`finish_lanes`]): the rendezvous scores of one row all start with the
/// row's seed.
///
/// Its `Debug` output is redacted: the state reveals the key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SipPrefix {
    v: [u64; 4],
}

impl SipKey {
    /// The state after absorbing `word` (the message's first 8 bytes,
    /// read little-endian).
    #[inline(always)]
    pub fn prefix(&self, word: u64) -> SipPrefix {
        let mut h = self.start();
        h.compress(word);
        SipPrefix { v: h.v }
    }
}

impl fmt::Debug for SipPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SipPrefix(<redacted>)")
    }
}

/// The rest of a message after its first word, as SipHash absorbs it:
/// `W` words, the last of which holds the final bytes with the whole
/// message's length in its top byte (see [`SipTail::new`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SipTail<const W: usize>(pub [u64; W]);

impl<const W: usize> SipTail<W> {
    /// The tail of a message of `8 + rest.len()` bytes whose first 8
    /// bytes are absorbed elsewhere; `None` unless `rest` fills exactly
    /// `W` words' worth (`W - 1` full words and 0 to 7 final bytes).
    pub fn new(rest: &[u8]) -> Option<Self> {
        if W == 0 || rest.len() / 8 != W - 1 {
            return None;
        }
        let mut words = [0u64; W];
        for (w, piece) in words.iter_mut().zip(rest.chunks(8)) {
            let mut b = [0u8; 8];
            b[..piece.len()].copy_from_slice(piece);
            *w = u64::from_le_bytes(b);
        }
        words[W - 1] |= ((8 + rest.len()) as u64 & 0xff) << 56;
        Some(SipTail(words))
    }
}

/// Tails of [`LANE_BLOCK`] messages, word by word: `[w][lane]`.
pub type TailBlock<const W: usize> = [Lanes; W];

/// Puts `tail` into `lane` of `block`.
#[inline(always)]
pub fn set_tail<const W: usize>(block: &mut TailBlock<W>, lane: usize, tail: SipTail<W>) {
    for (words, w) in block.iter_mut().zip(tail.0) {
        words[lane] = w;
    }
}

/// The operation of [`finish_lanes`] for `pulp` to compile per
/// instruction set.
struct FinishLanes<'a, const W: usize> {
    from: [u64; 4],
    tails: &'a [TailBlock<W>],
    out: &'a mut [Lanes],
}

impl<const W: usize> pulp::WithSimd for FinishLanes<'_, W> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let start = self.from.map(|w| [w; LANE_BLOCK]);
        for (tail, out) in self.tails.iter().zip(self.out.iter_mut()) {
            let mut v = start;
            for words in tail {
                compress_lanes(&mut v, words);
            }
            for w in &mut v[2] {
                *w ^= 0xff;
            }
            for _ in 0..4 {
                round_lanes(&mut v);
            }
            for (i, o) in out.iter_mut().enumerate() {
                *o = v[0][i] ^ v[1][i] ^ v[2][i] ^ v[3][i];
            }
        }
    }
}

/// SipHash-2-4 of every message `prefix ‖ tail`, one per lane of
/// `tails`, into the matching lanes of `out` (as [`Key16::siphash`] of the
/// message's bytes would give), with `engine`'s vector instructions.
#[inline]
pub fn finish_lanes<const W: usize>(
    engine: LaneEngine,
    prefix: &SipPrefix,
    tails: &[TailBlock<W>],
    out: &mut [Lanes],
) {
    engine.0.dispatch(FinishLanes {
        from: prefix.v,
        tails,
        out,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference SipHash-2-4 test vector from the SipHash paper
    /// (key 00..0f, message 00..0e) is a0 3b 4f d7 ... read little-endian.
    #[test]
    fn siphash_paper_vector() {
        let mut key = [0u8; 16];
        for (i, b) in key.iter_mut().enumerate() {
            *b = i as u8;
        }
        let msg: Vec<u8> = (0u8..15).collect();
        let out = Key16::new(key).siphash(&msg).to_le_bytes();
        assert_eq!(out, [0xe5, 0x45, 0xbe, 0x49, 0x61, 0xca, 0x29, 0xa1]);
    }

    /// The register-fed hasher agrees with the reference implementation
    /// (siphasher) for every message split into pieces of 1, 2, 4, 8 and
    /// 16 bytes, whatever the order of the piece sizes.
    #[test]
    fn sip_key_matches_siphasher() {
        use proptest::prelude::*;
        let piece = prop_oneof![
            prop::collection::vec(any::<u8>(), 1),
            prop::collection::vec(any::<u8>(), 2),
            prop::collection::vec(any::<u8>(), 4),
            prop::collection::vec(any::<u8>(), 8),
            prop::collection::vec(any::<u8>(), 16),
        ];
        let cases = (any::<[u8; 16]>(), prop::collection::vec(piece, 0..12));
        proptest!(|((key, pieces) in cases)| {
            let key = Key16::new(key);
            let mut h = SipKey::new(&key).start();
            for p in &pieces {
                match p.len() {
                    1 => h.write(&[p[0]]),
                    2 => h.write(&[p[0], p[1]]),
                    4 => h.write(&<[u8; 4]>::try_from(&p[..]).unwrap()),
                    8 => h.write(&<[u8; 8]>::try_from(&p[..]).unwrap()),
                    _ => h.write(&<[u8; 16]>::try_from(&p[..]).unwrap()),
                }
            }
            let mut reference = SipHasher24::new_with_key(key.expose());
            for p in &pieces {
                reference.write(p);
            }
            prop_assert_eq!(h.finish(), reference.finish());
        });
    }

    /// The paper's vectors for every message length 0..=63 (key 00..0f,
    /// message 00 01 02 ..), fed a byte at a time.
    #[test]
    fn sip_key_paper_lengths() {
        let key = Key16::new(core::array::from_fn(|i| i as u8));
        for n in 0..64u8 {
            let msg: Vec<u8> = (0..n).collect();
            let mut h = SipKey::new(&key).start();
            for b in &msg {
                h.write(&[*b]);
            }
            assert_eq!(h.finish(), key.siphash(&msg), "length {n}");
        }
        assert!(!format!("{:?}", SipKey::new(&key)).contains("0x"));
    }

    /// Every engine this CPU has (the vector ones and the portable one)
    /// hashes every lane of a full set of lanes exactly as the reference
    /// implementation, for every message length the lanes take, with a
    /// different key per lane.
    #[test]
    fn lanes_match_siphasher_on_every_engine() {
        use proptest::prelude::*;
        let engines = LaneEngine::available();
        assert!(engines.iter().any(|e| e.name() == "portable"));
        let lane = (any::<[u8; 16]>(), prop::collection::vec(any::<u8>(), 15));
        let cases = (prop::collection::vec(lane, 32), 0..=ShortMsg::MAX_LEN);
        proptest!(|((lanes, len) in cases)| {
            for engine in &engines {
                let mut l = SipLanes::<4>::new();
                for (i, (key, msg)) in lanes.iter().enumerate() {
                    let msg = ShortMsg::from_bytes(&msg[..usize::from(len)]);
                    l.load(i, &SipKey::new(&Key16::new(*key)), msg);
                }
                l.hash(*engine, len, 0..SipLanes::<4>::LANES);
                for (i, (key, msg)) in lanes.iter().enumerate() {
                    let want = Key16::new(*key).siphash(&msg[..usize::from(len)]);
                    prop_assert_eq!(l.get(i), want, "lane {} on {}", i, engine.name());
                }
                // The same messages all under the first lane's key, which
                // overrides the keys the lanes were loaded with.
                let shared = Key16::new(lanes[0].0);
                l.hash_under(*engine, len, 0..SipLanes::<4>::LANES, &SipKey::new(&shared));
                for (i, (_, msg)) in lanes.iter().enumerate() {
                    let want = shared.siphash(&msg[..usize::from(len)]);
                    prop_assert_eq!(l.get(i), want, "shared key, lane {} on {}", i, engine.name());
                }
            }
        });
    }

    /// Messages that share their first word, finished side by side from
    /// that word's state, hash as the reference implementation hashes
    /// the whole message, on every engine and for tails of every length
    /// the rendezvous scores use (IPv4 and IPv6) and those between.
    #[test]
    fn finished_lanes_match_siphasher_on_every_engine() {
        use proptest::prelude::*;
        fn check<const W: usize>(
            key: &Key16,
            first: [u8; 8],
            rests: &[Vec<u8>],
        ) -> Result<(), TestCaseError> {
            let mut blocks = vec![[[0u64; LANE_BLOCK]; W]; rests.len().div_ceil(LANE_BLOCK)];
            for (i, rest) in rests.iter().enumerate() {
                let tail = SipTail::<W>::new(rest).expect("a tail of W words");
                set_tail(&mut blocks[i / LANE_BLOCK], i % LANE_BLOCK, tail);
            }
            let sip = SipKey::new(key);
            let prefix = sip.prefix(u64::from_le_bytes(first));
            for engine in LaneEngine::available() {
                let mut out = vec![[0u64; LANE_BLOCK]; blocks.len()];
                finish_lanes(engine, &prefix, &blocks, &mut out);
                for (i, rest) in rests.iter().enumerate() {
                    let whole: Vec<u8> = first.iter().chain(rest).copied().collect();
                    prop_assert_eq!(
                        out.as_flattened()[i],
                        key.siphash(&whole),
                        "lane {} of {} bytes on {}",
                        i,
                        whole.len(),
                        engine.name()
                    );
                }
            }
            Ok(())
        }
        let cases = (
            any::<[u8; 16]>(),
            any::<[u8; 8]>(),
            prop::collection::vec(any::<u8>(), 23),
            1usize..20,
        );
        proptest!(|((key, first, bytes, lanes) in cases)| {
            let key = Key16::new(key);
            for len in 0..bytes.len() {
                let rests = vec![bytes[..len].to_vec(); lanes];
                // Vary the lanes so that a lane mix-up shows.
                let rests: Vec<Vec<u8>> = rests
                    .into_iter()
                    .enumerate()
                    .map(|(i, mut r)| {
                        if let Some(b) = r.first_mut() {
                            *b ^= i as u8;
                        }
                        r
                    })
                    .collect();
                match len / 8 {
                    0 => check::<1>(&key, first, &rests)?,
                    1 => check::<2>(&key, first, &rests)?,
                    _ => check::<3>(&key, first, &rests)?,
                }
            }
        });
        assert_eq!(SipTail::<1>::new(&[0; 8]), None, "8 bytes need two words");
        assert_eq!(SipTail::<3>::new(&[0; 4]), None);
    }

    /// Operators name engines; one the CPU lacks is refused, not
    /// silently replaced.
    #[test]
    fn engines_by_name() {
        assert_eq!(
            LaneEngine::named("auto").unwrap().name(),
            LaneEngine::detect().name()
        );
        assert_eq!("portable".parse::<LaneEngine>().unwrap().name(), "portable");
        assert_eq!(
            LaneEngine::named("sse9").err(),
            Some(LaneEngineError::Unknown("sse9".into()))
        );
        #[cfg(target_arch = "x86_64")]
        for (name, has) in [
            ("avx2", std::is_x86_feature_detected!("avx2")),
            ("avx512", std::is_x86_feature_detected!("avx512f")),
        ] {
            match LaneEngine::named(name) {
                Ok(e) => {
                    assert!(has, "{name} offered without the instructions");
                    assert_eq!(e.to_string(), name);
                }
                Err(e) => {
                    assert!(!has, "{name} refused on a CPU that has it");
                    assert_eq!(e, LaneEngineError::Unsupported(name));
                }
            }
        }
    }

    /// Hashing a range leaves other blocks alone, and hashing a block
    /// again after more of its lanes were loaded gives the right hashes
    /// for all of them.
    #[test]
    fn lanes_hash_in_steps() {
        let key = SipKey::new(&Key16::new([7; 16]));
        let reference = |i: usize| Key16::new([7; 16]).siphash(&[i as u8; 6]);
        for engine in LaneEngine::available() {
            let mut l = SipLanes::<2>::new();
            for i in 0..3 {
                l.load(i, &key, ShortMsg::from_bytes(&[i as u8; 6]));
            }
            l.hash(engine, 6, 0..3);
            assert_eq!(l.get(8), 0, "block 1 was not hashed");
            for i in 3..12 {
                l.load(i, &key, ShortMsg::from_bytes(&[i as u8; 6]));
            }
            l.hash(engine, 6, 3..12);
            for i in 0..12 {
                assert_eq!(l.get(i), reference(i), "lane {i} on {}", engine.name());
            }
            // Past the end: ignored on load, 0 on read.
            l.load(16, &key, ShortMsg::from_bytes(&[1]));
            assert_eq!(l.get(16), 0);
        }
        assert!(!format!("{:?}", SipLanes::<1>::new()).contains("0x"));
    }

    /// The register-fed short-message hash agrees with the reference.
    #[test]
    fn hash_short_matches_siphasher() {
        use proptest::prelude::*;
        let cases = (
            any::<[u8; 16]>(),
            prop::collection::vec(any::<u8>(), 0..=15),
        );
        proptest!(|((key, msg) in cases)| {
            let k = Key16::new(key);
            prop_assert_eq!(SipKey::new(&k).hash_short(ShortMsg::from_bytes(&msg)), k.siphash(&msg));
        });
    }

    #[test]
    fn hex_parsing() {
        let k = Key16::from_hex("000102030405060708090A0b0C0d0E0f").unwrap();
        assert_eq!(k.expose()[10], 10);
        assert_eq!(k.expose()[15], 15);
        assert_eq!(Key16::from_hex("00"), Err(HexKeyError::Length(2)));
        assert_eq!(
            Key16::from_hex("0001020304050607080900000000000g"),
            Err(HexKeyError::NotHex(31))
        );
    }

    #[test]
    fn debug_is_redacted() {
        let k = Key16::from_hex("12345678901234561234567890123456").unwrap();
        assert!(!format!("{k:?}").contains("1234"));
    }
}
