//! One seed drives every random choice of a run.
//!
//! Random numbers are drawn on the host from ChaCha streams rather than from the backend's
//! generator: the host streams are identical on every backend and thread count, and their
//! state can be written into a checkpoint so that a resumed run draws exactly what an
//! uninterrupted one would have.

use chacha20::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Independent streams derived from the run seed, so that e.g. changing the batch size does
/// not change the initial weights.
#[derive(Clone, Copy, Debug)]
pub enum Stream {
    /// Initial weights of G and D.
    Init = 1,
    /// Latents, label noise and instance noise of the training loop.
    Train = 2,
    /// The fixed latent batch that sample grids are drawn from.
    FixedNoise = 3,
    /// The order in which the dataset is visited, one shuffle per epoch.
    DataOrder = 4,
    /// A StyleGAN2 generator's own randomness (noise inputs, style mixing), seeded by its latent.
    Synthesis = 5,
}

/// A serializable random generator.
#[derive(Debug, PartialEq)]
pub struct GanRng(ChaCha8Rng);

// The chacha20 crate's generator is not Clone (it zeroizes its key on drop): a copy is rebuilt
// from the state, as a checkpoint rebuilds it.
impl Clone for GanRng {
    fn clone(&self) -> Self {
        Self(ChaChaState::of(&self.0).rng())
    }
}

/// The state of a ChaCha stream as checkpoints store it: the format of rand_chacha 0.9, which
/// ganforge used before rand 0.10 (whose ChaCha, the chacha20 crate's, has no serde), so that
/// the checkpoints of either version load and continue the same stream.
#[derive(Serialize, Deserialize)]
struct ChaChaState {
    seed: [u8; 32],
    stream: u64,
    /// Position in the stream, in 32-bit words.
    word_pos: u128,
}

impl ChaChaState {
    fn of(rng: &ChaCha8Rng) -> Self {
        Self { seed: rng.get_seed(), stream: rng.get_stream(), word_pos: rng.get_word_pos() }
    }

    fn rng(&self) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::from_seed(self.seed);
        // set_stream resets the position: it goes first.
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos);
        rng
    }
}

impl Serialize for GanRng {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ChaChaState::of(&self.0).serialize(s)
    }
}

impl<'de> Deserialize<'de> for GanRng {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(ChaChaState::deserialize(d)?.rng()))
    }
}

impl GanRng {
    pub fn new(seed: u64, stream: Stream) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream as u64);
        Self(rng)
    }

    /// A stream for one epoch of the data order.
    pub fn for_epoch(seed: u64, epoch: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        rng.set_stream(Stream::DataOrder as u64);
        Self(rng)
    }

    /// `n` draws from N(mean, std^2).
    pub fn normal_vec(&mut self, n: usize, mean: f32, std: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let z: f32 = StandardNormal.sample(&mut self.0);
                mean + std * z
            })
            .collect()
    }

    /// `n` draws from U[lo, hi).
    pub fn uniform_vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.0.random_range(lo..hi)).collect()
    }

    /// `true` with probability `p`.
    pub fn bernoulli(&mut self, p: f64) -> bool {
        p > 0.0 && self.0.random_bool(p.min(1.0))
    }

    /// A uniform draw from `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0.random_range(0..n)
    }

    /// A uniformly random permutation of `0..n` (Fisher-Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.0.random_range(0..=i);
            idx.swap(i, j);
        }
        idx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_and_repeat() {
        let a = GanRng::new(7, Stream::Train).normal_vec(4, 0.0, 1.0);
        let b = GanRng::new(7, Stream::Train).normal_vec(4, 0.0, 1.0);
        let c = GanRng::new(7, Stream::Init).normal_vec(4, 0.0, 1.0);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut r = GanRng::new(3, Stream::Train);
        r.normal_vec(10, 0.0, 1.0);
        let json = serde_json::to_string(&r).unwrap();
        let mut back: GanRng = serde_json::from_str(&json).unwrap();
        assert_eq!(r.normal_vec(5, 0.0, 1.0), back.normal_vec(5, 0.0, 1.0));
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = GanRng::for_epoch(1, 0).permutation(100);
        p.sort();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
    }

    /// FNV-1a over 64-bit words: one number that pins a whole stream.
    fn fnv(words: impl IntoIterator<Item = u64>) -> u64 {
        words.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, w| (h ^ w).wrapping_mul(0x0000_0100_0000_01b3))
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Every draw of every kind, as commit 2340d05 (rand 0.9, rand_chacha 0.9, rand_distr 0.5,
    /// before the upgrade to burn's rand 0.10) made them: the values below were printed by that
    /// commit's code. Seeds and run folders keep their images only while these hold.
    #[test]
    fn streams_are_those_of_commit_2340d05() {
        let mut r = GanRng::new(42, Stream::Train);
        assert_eq!(bits(&r.normal_vec(4, 0.0, 1.0)), PIN_NORMAL_4);
        // 100,000 draws reach the ziggurat's wedges and tail, not only its fast path.
        assert_eq!(fnv(r.normal_vec(100_000, 0.0, 1.0).iter().map(|v| v.to_bits() as u64)), PIN_NORMAL_FNV);
        assert_eq!(bits(&r.uniform_vec(3, -1.0, 1.0)), PIN_UNIFORM_3);
        assert_eq!(fnv(r.uniform_vec(10_000, 0.0, 0.5).iter().map(|v| v.to_bits() as u64)), PIN_UNIFORM_FNV);
        let coins = (0..64).fold(0u64, |m, i| m | ((r.bernoulli(0.3) as u64) << i));
        assert_eq!(coins, PIN_COINS);
        // Certain outcomes: whether they consume the stream shows in the next draw.
        assert!(r.bernoulli(1.0) && !r.bernoulli(0.0));
        assert_eq!(bits(&r.normal_vec(1, 0.0, 1.0)), PIN_AFTER_CERTAIN);
        assert_eq!(fnv(r.permutation(1000).into_iter().map(|i| i as u64)), PIN_PERM_FNV);
        assert_eq!(GanRng::for_epoch(42, 3).permutation(10), PIN_EPOCH_PERM);
        assert_eq!(bits(&GanRng::new(7, Stream::Init).normal_vec(2, 1.0, 0.02)), PIN_INIT_2);
        // The state a checkpoint stores, field for field.
        assert_eq!(serde_json::to_string(&r).unwrap(), PIN_STATE_JSON);
    }

    /// A state as the checkpoint of the old run fixture (commit c47ce6c) stores it continues
    /// with the draws it continued with at commit 2340d05.
    #[test]
    fn an_old_checkpoint_state_continues_its_stream() {
        let json = r#"{"seed":[164,143,161,123,88,50,61,10,234,184,161,204,105,1,20,184,43,140,200,117,24,180,247,84,141,68,110,161,228,223,32,242],"stream":2,"word_pos":912}"#;
        let mut r: GanRng = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), json, "it writes back what it read");
        assert_eq!(bits(&r.normal_vec(3, 0.0, 1.0)), PIN_OLD_STATE_NORMAL_3);
        assert_eq!(r.permutation(8), PIN_OLD_STATE_PERM);
    }

    #[test]
    fn normal_moments() {
        let v = GanRng::new(1, Stream::Init).normal_vec(20000, 1.0, 0.02);
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32;
        assert!((mean - 1.0).abs() < 1e-3, "{mean}");
        assert!((var.sqrt() - 0.02).abs() < 1e-3, "{var}");
    }

    // Printed by commit 2340d05's code.
    const PIN_NORMAL_4: [u32; 4] = [1025613865, 3218098992, 3195353883, 3181069073];
    const PIN_NORMAL_FNV: u64 = 0xdac31da2e8965e00;
    const PIN_UNIFORM_3: [u32; 3] = [1046431808, 3177224064, 1058239396];
    const PIN_UNIFORM_FNV: u64 = 0x635f772bdeaad0d7;
    const PIN_COINS: u64 = 0xa282a7b51210060;
    const PIN_AFTER_CERTAIN: [u32; 1] = [3199028302];
    const PIN_PERM_FNV: u64 = 0xdada61d3a7cd0b57;
    const PIN_EPOCH_PERM: [usize; 10] = [2, 1, 7, 9, 6, 0, 4, 8, 3, 5];
    const PIN_INIT_2: [u32; 2] = [1065525415, 1064744995];
    const PIN_STATE_JSON: &str = r#"{"seed":[164,143,161,123,88,50,61,10,234,184,161,204,105,1,20,184,43,140,200,117,24,180,247,84,141,68,110,161,228,223,32,242],"stream":2,"word_pos":215430}"#;
    const PIN_OLD_STATE_NORMAL_3: [u32; 3] = [1043598412, 1068677673, 1073168326];
    const PIN_OLD_STATE_PERM: [usize; 8] = [6, 5, 1, 7, 0, 4, 2, 3];
}
